"""The embedded model's tokenizer: byte-level BPE (GPT-2's scheme) learned from the corpus, digits cut in pairs."""

from __future__ import annotations

from tokenizers import ByteLevelBPETokenizer, Regex, pre_tokenizers
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"
PAD = "<pad>"


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (GPT-2's scheme) learned from ``texts``, as a transformers tokenizer.

    Numbers are cut into pairs of digits before BPE, the first pair keeping the space before it (" 899015" →
    " 89" "90" "15"), and every pair is in the vocabulary: a number tokenizes the same way wherever it stands, and
    its first token is a word-like token, as a categorical answer's is. Measured here: with BPE's own cuts, with
    single digits, or with a bare space token before the digits, the model could not copy record numbers, ages or
    dates out of its context (≈ chance) while it copied allergies and cities.
    """
    bpe = ByteLevelBPETokenizer()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r" ?\d{1,2}"), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    pairs = [f"{i:02d}" for i in range(100)]  # every pair, with and without a space, becomes a token
    every_pair = " ".join(pairs) + " " + "".join(pairs)
    bpe.train_from_iterator([*texts, *[every_pair] * 100], vocab_size=vocab_size, min_frequency=2,
                            special_tokens=[EOS, PAD], show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS, pad_token=PAD)
