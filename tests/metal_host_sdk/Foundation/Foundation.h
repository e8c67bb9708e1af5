// Stand-in for <Foundation/Foundation.h> (see ../README.md): only what the host uses.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef long NSInteger;
typedef unsigned long NSUInteger;
typedef bool BOOL;  // arm64
#define YES true
#define NO false
#define nil nullptr  // objc/objc.h, under C++11
#define NS_RETURNS_RETAINED __attribute__((ns_returns_retained))
#define NS_ENUM(type, name) enum name : type name; enum name : type
#define NS_OPTIONS(type, name) enum name : type name; enum name : type

__attribute__((objc_root_class))
@interface NSObject
+ (instancetype)new;
+ (instancetype)alloc;
- (instancetype)init;
@end

typedef struct {
  unsigned long state;
  id __unsafe_unretained _Nullable* _Nullable itemsPtr;
  unsigned long* _Nullable mutationsPtr;
  unsigned long extra[5];
} NSFastEnumerationState;

@protocol NSFastEnumeration
- (NSUInteger)countByEnumeratingWithState:(NSFastEnumerationState* _Nonnull)state
                                  objects:(id __unsafe_unretained _Nullable[_Nonnull])buffer
                                    count:(NSUInteger)len;
@end

@interface NSString : NSObject
+ (nullable instancetype)stringWithUTF8String:(const char* _Nonnull)nullTerminatedCString;
@property(nullable, readonly) const char* UTF8String;
@end

@interface NSArray<ObjectType> : NSObject <NSFastEnumeration>
+ (instancetype _Nonnull)array;
@property(readonly) NSUInteger count;
@end

@interface NSMutableArray<ObjectType> : NSArray<ObjectType>
- (void)addObject:(ObjectType _Nonnull)anObject;
- (void)addObjectsFromArray:(NSArray<ObjectType>* _Nonnull)otherArray;
@end

typedef NSString* NSErrorDomain;

@interface NSError : NSObject
@property(readonly, copy) NSErrorDomain _Nonnull domain;
@property(readonly) NSInteger code;
@property(readonly, copy) NSString* _Nonnull localizedDescription;
@end

typedef NSString* NSExceptionName;

@interface NSException : NSObject
@property(readonly, copy) NSExceptionName _Nonnull name;
@property(nullable, readonly, copy) NSString* reason;
@end
