# Embeds the MSL kernels into a C++ source file, so the Metal host compiles
# them with newLibraryWithSource and needs no file next to the binary.
#
#   cmake -DMSL_DIR=<metal/> -DOUTPUT=<file.cpp> -P embed_msl.cmake
#
# Every <MSL_DIR>/*.metal (sorted by name) is concatenated into one source,
# with each local `#include "..."` replaced by the file it names, resolved
# relative to the including file, each file at most once (as #pragma once
# would; the pragma itself is dropped). `#include <...>` (metal_stdlib) is
# kept. `#line` markers make Metal's compile errors name the original files.
# Plain CMake script: it runs on Linux too, where the tests check its output.
cmake_minimum_required(VERSION 3.20)

if(NOT MSL_DIR OR NOT OUTPUT)
  message(FATAL_ERROR "usage: cmake -DMSL_DIR=<dir> -DOUTPUT=<file.cpp> -P embed_msl.cmake")
endif()

set(_inlined "")  # files already inlined (absolute paths)

# Sets `out` to the text of `path` with its local includes inlined.
function(inline_file path out)
  get_filename_component(path "${path}" ABSOLUTE)
  get_filename_component(dir "${path}" DIRECTORY)
  get_filename_component(name "${path}" NAME)
  file(READ "${path}" text)
  string(REPLACE "\r\n" "\n" text "${text}")
  string(REGEX REPLACE "#[ \t]*pragma[ \t]+once[^\n]*" "// (#pragma once: inlined once)" text "${text}")
  set(done "")
  set(rest "${text}")
  set(line 0)  # lines of this file before `rest`
  while(TRUE)
    string(REGEX MATCH "#[ \t]*include[ \t]*\"[^\"\n]+\"" directive "${rest}")
    if(NOT directive)
      break()
    endif()
    string(FIND "${rest}" "${directive}" at)
    string(SUBSTRING "${rest}" 0 ${at} before)
    string(LENGTH "${directive}" len)
    math(EXPR after_at "${at} + ${len}")
    string(SUBSTRING "${rest}" ${after_at} -1 rest)
    string(REGEX REPLACE "^#[ \t]*include[ \t]*\"([^\"]+)\"$" "\\1" target "${directive}")
    get_filename_component(target_path "${dir}/${target}" ABSOLUTE)
    if(NOT EXISTS "${target_path}")
      message(FATAL_ERROR "embed_msl: ${path} includes \"${target}\", which is not at ${target_path}")
    endif()
    # The line after the directive, for the #line marker that resumes this file.
    string(APPEND done "${before}")
    string(REGEX MATCHALL "\n" newlines "${before}")
    list(LENGTH newlines n)
    math(EXPR line "${line} + ${n}")
    math(EXPR resume "${line} + 2")
    list(FIND _inlined "${target_path}" seen)
    if(seen EQUAL -1)
      list(APPEND _inlined "${target_path}")
      set(_inlined "${_inlined}" PARENT_SCOPE)
      inline_file("${target_path}" body)
      get_filename_component(target_name "${target_path}" NAME)
      set(replacement "// ${directive} (inlined)\n#line 1 \"${target_name}\"\n${body}\n#line ${resume} \"${name}\"")
    else()
      set(replacement "// ${directive} (already inlined above)")
    endif()
    string(APPEND done "${replacement}")
  endwhile()
  set(${out} "${done}${rest}" PARENT_SCOPE)
  set(_inlined "${_inlined}" PARENT_SCOPE)
endfunction()

file(GLOB sources "${MSL_DIR}/*.metal")
list(SORT sources)
if(NOT sources)
  message(FATAL_ERROR "embed_msl: no .metal files in ${MSL_DIR}")
endif()

set(library "")
foreach(source IN LISTS sources)
  get_filename_component(name "${source}" NAME)
  list(APPEND _inlined "${source}")
  inline_file("${source}" body)
  string(APPEND library "// ==== ${name} ====\n#line 1 \"${name}\"\n${body}\n")
endforeach()

set(delimiter "volconv_msl")
string(FIND "${library}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "embed_msl: the MSL text contains the raw-string delimiter )${delimiter}\"")
endif()

set(generated "// Generated from ${MSL_DIR}/*.metal by csrc/metal/embed_msl.cmake: do not edit.
#include \"msl_source.h\"

namespace volconv::metal {

const char* const kMslSource = R\"${delimiter}(${library})${delimiter}\";

}  // namespace volconv::metal
")
# Rewrite only on change, so an unchanged kernel tree does not relink.
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" previous)
  if(previous STREQUAL generated)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${generated}")
