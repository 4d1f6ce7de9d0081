"""Summary-block parsing of tinygpt runs."""

import pytest

from workloads.tinygpt.summary import SummaryError, parse_summary

BLOCK = """\
---
val_bpb:        2.822712
eval_bytes:     32768
train_bpb:      2.901000
steps:          350
tokens:         716800
train_flops:    986534707200
train_seconds:  30.12
total_seconds:  33.40
num_params:     229384
peak_memory_mb: 460.2
device:         cpu
budget_mode:    steps
budget:         350 steps
seed:           0
"""


def test_parses_every_field_after_log_lines():
    summary = parse_summary("width 64\nstep 0 loss 5.5\n--- not a block\n" + BLOCK)
    assert summary.val_bpb == pytest.approx(2.822712)
    assert (summary.steps, summary.tokens, summary.eval_bytes, summary.num_params) == (350, 716800, 32768, 229384)
    assert summary.train_seconds == pytest.approx(30.12)
    assert summary.peak_memory_mb == pytest.approx(460.2)
    assert summary.fields["budget"] == "350 steps"
    assert (summary.train_flops, summary.budget_mode) == (6 * 229384 * 716800, "steps")


def test_train_flops_is_optional_but_checked():
    old = parse_summary(BLOCK.replace("train_flops:    986534707200\n", "").replace("budget_mode:    steps\n", ""))
    assert (old.train_flops, old.budget_mode) == (None, None)
    assert parse_summary(BLOCK.replace("986534707200", "n/a")).train_flops is None
    with pytest.raises(SummaryError, match="'train_flops' is not an integer"):
        parse_summary(BLOCK.replace("986534707200", "9.9e11"))


def test_no_block_is_an_error():
    with pytest.raises(SummaryError, match="no summary block"):
        parse_summary("step 0 loss 5.5\nTraceback (most recent call last):\n")


def test_two_blocks_are_refused():
    with pytest.raises(SummaryError, match="2 summary blocks"):
        parse_summary(BLOCK + "extra\n" + BLOCK)


def test_missing_field_is_named():
    with pytest.raises(SummaryError, match="'tokens'"):
        parse_summary(BLOCK.replace("tokens:         716800\n", ""))


@pytest.mark.parametrize("bad", ["nan", "inf", "abc"])
def test_non_finite_or_garbage_val_bpb_is_refused(bad):
    with pytest.raises(SummaryError, match="val_bpb"):
        parse_summary(BLOCK.replace("2.822712", bad))


def test_block_ends_at_first_non_field_line():
    summary = parse_summary(BLOCK + "this line has no colon\nsteps: 999\n")
    assert summary.steps == 350
