"""conv_params caches its result by argument value (a GPU call's host time):
the same plain arguments give the same object, and a bool or a float that
compares equal to a cached int is still refused as before (never served
from the int's entry)."""

from __future__ import annotations

import pytest

from volconv._params import conv_params


def test_same_plain_arguments_share_one_result():
    a = conv_params(1, (1, 2, 1), 1, 4, (3, 3, 3))
    assert conv_params(1, (1, 2, 1), 1, 4, (3, 3, 3)) is a
    assert tuple(a.stride) == (1, 2, 1) and a.groups == 4
    assert conv_params(2, (1, 2, 1), 1, 4, (3, 3, 3)) is not a


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(groups=True), "groups to be an int but got bool"),
        (dict(stride=(1.0, 1, 1)), "stride"),
        (dict(padding=True), "padding"),
    ],
)
def test_values_equal_to_a_cached_int_are_still_checked(kwargs, match):
    plain = dict(padding=1, stride=(1, 1, 1), dilation=1, groups=1)
    conv_params(**plain, kernel=(3, 3, 3))  # cached
    with pytest.raises((ValueError, TypeError), match=match):
        conv_params(**{**plain, **kwargs}, kernel=(3, 3, 3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(groups=True), "groups to be an int but got bool"),
        (dict(stride=1.0), "stride"),
        (dict(dilation=True), "dilation"),
        (dict(padding=True), "padding"),
        (dict(padding_mode=("zeros", "zeros")), "padding_mode"),
    ],
)
def test_scalar_arguments_equal_to_a_cached_int_are_still_checked(kwargs, match):
    # All-scalar ints take conv_params' quick plainness check.
    plain = dict(padding=1, stride=1, dilation=1, groups=1)
    conv_params(**plain, kernel=(3, 3, 3))  # cached
    with pytest.raises((ValueError, TypeError), match=match):
        conv_params(**{**plain, **kwargs}, kernel=(3, 3, 3))
