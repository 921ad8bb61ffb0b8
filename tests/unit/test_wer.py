"""Word error rate scores what a reader of the transcript would count as wrong."""

from __future__ import annotations

import unicodedata

import pytest

from asr.wer import normalise, word_error_rate

pytestmark = pytest.mark.unit


def test_identical_text_scores_zero() -> None:
    assert word_error_rate("there is a fire", "there is a fire") == 0.0


def test_case_and_punctuation_do_not_count() -> None:
    assert word_error_rate("There is a fire!", "there is a fire") == 0.0
    assert word_error_rate("Help, please.", "help please") == 0.0
    assert word_error_rate("Don't hang up", "dont hang up") == 0.0


def test_substitution_deletion_insertion_each_count_one() -> None:
    reference = "my neighbour is not breathing"
    assert word_error_rate(reference, "my neighbour is now breathing") == pytest.approx(1 / 5)
    assert word_error_rate(reference, "my neighbour is breathing") == pytest.approx(1 / 5)
    assert word_error_rate(reference, "oh my neighbour is not breathing") == pytest.approx(1 / 5)


def test_rate_can_exceed_one_with_many_insertions() -> None:
    assert word_error_rate("fire", "there is a big fire here") == pytest.approx(5.0)


def test_empty_reference() -> None:
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "hello") == 1.0
    assert word_error_rate("hello", "") == 1.0


def test_vietnamese_is_compared_after_nfc_normalisation() -> None:
    composed = "Cháy nhà ở phường Láng Hạ"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert word_error_rate(composed, decomposed) == 0.0
    # Tones matter: "cháy" (fire) is not "chạy" (run).
    assert word_error_rate("cháy nhà", "chạy nhà") == pytest.approx(0.5)


def test_numbers_are_left_as_they_are() -> None:
    assert normalise("Số 12/3, tầng 3.5") == ["số", "12/3", "tầng", "3.5"]
    assert word_error_rate("phone 0912", "phone zero nine one two") == pytest.approx(4 / 2)
