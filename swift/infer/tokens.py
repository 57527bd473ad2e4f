"""The bytes a token stands for, as OpenAI's logprob entries report them (``token``, ``bytes``)."""
import re


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level BPE alphabet: each byte's stand-in character."""
    printable = [*range(ord('!'), ord('~') + 1), *range(ord('¡'), ord('¬') + 1), *range(ord('®'), ord('ÿ') + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + i) for i, b in enumerate(others)}}


_BYTE_OF_CHAR = {char: byte for byte, char in _bytes_to_unicode().items()}
_BYTE_FALLBACK = re.compile(r'<0x([0-9A-Fa-f]{2})>')


def token_bytes(tokenizer, token_id: int) -> bytes:
    """One token can be part of a character, so decoding it alone is not enough: read its bytes off the vocabulary."""
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if piece is None:
        return tokenizer.decode([token_id]).encode()
    if token_id in tokenizer.all_special_ids or piece in tokenizer.get_added_vocab():
        return piece.encode()  # added tokens are stored as their text
    decoder = getattr(getattr(tokenizer, 'backend_tokenizer', None), 'decoder', None)
    if type(decoder).__name__ == 'ByteLevel' and all(char in _BYTE_OF_CHAR for char in piece):
        return bytes(_BYTE_OF_CHAR[char] for char in piece)
    if match := _BYTE_FALLBACK.fullmatch(piece):  # sentencepiece's byte fallback
        return bytes([int(match.group(1), 16)])
    return piece.replace('\u2581', ' ').encode()  # sentencepiece marks a leading space with U+2581
