"""Mutable part of the sort target: sort a list of integers as fast as you can, in pure Python.

`sort_ints(values)` must return a new list holding the same integers in ascending order.
"""

INSERTION_THRESHOLD = 8  # runs this short are cheaper to insertion-sort than to split


def insertion_sort(values, lo, hi):
    for i in range(lo + 1, hi):
        item = values[i]
        j = i - 1
        while j >= lo and values[j] > item:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = item


def merge_sort(values, lo, hi, scratch):
    if hi - lo <= INSERTION_THRESHOLD:
        insertion_sort(values, lo, hi)
        return
    mid = (lo + hi) // 2
    merge_sort(values, lo, mid, scratch)
    merge_sort(values, mid, hi, scratch)
    scratch[lo:hi] = values[lo:hi]
    i, j, k = lo, mid, lo
    while i < mid and j < hi:
        if scratch[j] < scratch[i]:
            values[k] = scratch[j]
            j += 1
        else:
            values[k] = scratch[i]
            i += 1
        k += 1
    values[k:hi] = scratch[i:mid] if i < mid else scratch[j:hi]


def sort_ints(values):
    result = list(values)
    merge_sort(result, 0, len(result), [0] * len(result))
    return result
