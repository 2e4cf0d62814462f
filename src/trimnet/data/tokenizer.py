"""Tokenizers trained on the user's own training split with Hugging Face ``tokenizers`` (offline).

A tokenizer is kept as its ``tokenizer.json`` text (JSON, never a pickle): trained here,
written into the run directory, and loaded back with ``Tokenizer.from_str``. Its padding and
truncation are set to the model's sequence length, so ``encode`` always gives ``(N, seq_len)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from trimnet.errors import ConfigError, DataError

# BPE is the default: its trainer gives the same tokens in every process. WordPiece's breaks
# ties at the vocabulary limit in hash-map order, so two trainings may differ by a token;
# the run directory's tokenizer.json is what counts either way.
KINDS = ("bpe", "wordpiece")
PAD, UNK = "[PAD]", "[UNK]"
PAD_ID = 0  # the text model's padding_idx


def _tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise ConfigError("text data needs the tokenizers package; pip install 'trimnet[text]'") from None
    return tokenizers


def train_tokenizer(texts: Iterable[str], kind: str = "bpe", vocab_size: int = 4096,
                    seq_len: int = 64) -> str:
    """Train a ``kind`` tokenizer of at most ``vocab_size`` tokens on ``texts``; returns its JSON."""
    tk = _tokenizers()
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    if kind not in KINDS:
        raise ConfigError(f"data.tokenizer {kind!r} is neither {' nor '.join(KINDS)} nor a tokenizer.json file; "
                          "pass --data.tokenizer wordpiece, bpe or PATH/tokenizer.json")
    if kind == "wordpiece":
        tok = tk.Tokenizer(models.WordPiece(unk_token=UNK))
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=[PAD, UNK], show_progress=False)
    else:
        tok = tk.Tokenizer(models.BPE(unk_token=UNK))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, UNK], show_progress=False)
    # Lowercase and accent-free words split at whitespace and punctuation (BERT's uncased rules):
    # "FREE!!" and "free" share tokens, and "£100" keeps its currency sign as a token.
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainer=trainer)
    if kind == "wordpiece":
        # The trainer numbers WordPiece tokens in hash-map order, a different numbering per
        # process; renumber (specials first, then by text) so a resumed run sees the same ids.
        vocab = tok.get_vocab()
        order = [PAD, UNK] + sorted(t for t in vocab if t not in (PAD, UNK))
        tok.model = models.WordPiece({t: i for i, t in enumerate(order)}, unk_token=UNK)
    return _with_length(tok, seq_len).to_str()


def load_tokenizer(spec: str, seq_len: int | None = None):
    """A ``tokenizers.Tokenizer`` from JSON text or a ``tokenizer.json`` path (padded to ``seq_len`` if given)."""
    tk = _tokenizers()
    text = spec
    if not spec.lstrip().startswith("{"):
        path = Path(spec).expanduser()
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise DataError(f"tokenizer {spec} does not exist; pass a tokenizer.json (e.g. RUN_DIR/tokenizer.json)")
        text = path.read_text(encoding="utf-8")
    try:
        tok = tk.Tokenizer.from_str(text)
    except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
        raise DataError(f"tokenizer {spec[:60]!r} is not a valid tokenizer.json ({exc}); train it again") from None
    if tok.token_to_id(PAD) != PAD_ID:
        raise DataError(f"tokenizer {spec[:60]!r} does not map {PAD} to id {PAD_ID}; train it with trimnet")
    return _with_length(tok, seq_len) if seq_len is not None else tok


def _with_length(tok, seq_len: int):
    tok.enable_padding(pad_id=PAD_ID, pad_token=PAD, length=seq_len)
    tok.enable_truncation(max_length=seq_len)
    return tok


def encode(tok, texts: Sequence[str]) -> np.ndarray:
    """Token ids ``(N, seq_len)`` as float32 (the dtype every trimnet model input has)."""
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise DataError(f"text {bad} is a {type(texts[bad]).__name__}, not a string; pass a list of str")
    padding = tok.padding
    length = padding["length"] if padding else None
    if not texts:
        return np.zeros((0, length or 0), dtype=np.float32)
    ids = [e.ids for e in tok.encode_batch(list(texts))]
    return np.asarray(ids, dtype=np.float32)


def vocab_size(tok) -> int:
    return tok.get_vocab_size()
