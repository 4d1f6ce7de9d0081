"""tinygpt: a byte-level GPT pretraining benchmark with a fixed harness and one editable train.py."""
