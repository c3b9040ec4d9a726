"""Bytes to text the way browsers and feed readers do it.

Order (WHATWG "encoding sniffing", XML 1.0 appendix F): a byte order mark, the charset of the
HTTP ``Content-Type``, the document's own declaration (``<meta charset>``, ``<meta http-equiv>``,
``<?xml encoding?>``), then statistical detection (charset-normalizer). A declaration is not
trusted when the bytes are valid UTF-8 with non-ASCII characters in them: real servers often
label UTF-8 pages "iso-8859-1", and legacy text is practically never valid multi-byte UTF-8.
"""

from __future__ import annotations

import codecs
import logging
import re

from rag.errors import IngestError

log = logging.getLogger(__name__)

# Longest BOM first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))

# WHATWG Encoding labels that name a smaller charset than the one pages labelled so really use.
_SUPERSETS = {
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "l1": "cp1252",
    "us-ascii": "cp1252", "ascii": "cp1252", "iso-8859-9": "cp1254", "latin5": "cp1254",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030", "euc-cn": "gb18030",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "ms_kanji": "cp932", "windows-31j": "cp932",
    "euc-kr": "cp949", "ks_c_5601-1987": "cp949", "tis-620": "cp874", "iso-8859-11": "cp874", "big5": "big5hkscs",
}

_META = re.compile(rb"""<meta\s[^>]*?charset\s*=\s*["']?\s*([\w.:-]+)""", re.I)
_XML_DECL = re.compile(rb"""\A\s*<\?xml\s[^>]*?encoding\s*=\s*["']([\w.:-]+)["']""", re.I)
_DECL_SCAN = 8192  # WHATWG's prescan reads 1024 bytes; real pages put long scripts before the meta tag


def codec_for(label: str) -> str:
    """The Python codec for a charset label, or "" when Python has none."""
    label = (label or "").strip().strip("\"'").lower()
    if not label:
        return ""
    label = _SUPERSETS.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return ""


def charset_from_content_type(ctype: str) -> str:
    m = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", ctype or "", re.I)
    return m.group(1) if m else ""


def declared_charset(data: bytes) -> str:
    """The charset named by an XML declaration or a ``<meta>`` tag near the start, as written."""
    head = data[:_DECL_SCAN]
    m = _XML_DECL.match(head) or _META.search(head)
    return m.group(1).decode("ascii", "ignore") if m else ""


def _wide_encoding(sample: bytes) -> str:
    """UTF-32 or UTF-16 without a BOM, told by where the zero bytes fall (XML 1.0 appendix F); else ""."""
    n = len(sample) - len(sample) % 4
    if n < 8:
        return ""
    s = sample[:n]
    cols = [s[i::4].count(0) / (n / 4) for i in range(4)]
    # Outside the rarely used supplementary planes the two high bytes of each UTF-32 unit are zero.
    if cols[2] > 0.9 and cols[3] > 0.9 and cols[0] < 0.5:
        return "utf-32-le"
    if cols[0] > 0.9 and cols[1] > 0.9 and cols[3] < 0.5:
        return "utf-32-be"
    odd, even = s[1::2].count(0) / (n / 2), s[0::2].count(0) / (n / 2)
    if odd > 0.4 and even < 0.1:
        return "utf-16-le"
    if even > 0.4 and odd < 0.1:
        return "utf-16-be"
    return ""


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _try(data: bytes, codec: str) -> str | None:
    """Decode with ``codec``; a handful of undecodable bytes (a stray byte in a big page) are replaced."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        text = data.decode(codec, errors="replace")
        return text if text.count("\ufffd") <= max(2, len(text) // 1000) else None
    except LookupError:
        return None


def detect_encoding(data: bytes, *, http_charset: str = "", declarations: bool = True) -> tuple[str, str]:
    """(Python codec, how it was chosen: "bom", "http", "declared", "utf-8", "detected" or "fallback")."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, "bom"
    wide = _wide_encoding(data[:8192])
    if wide:
        return wide, "bom"  # no BOM, but as certain as one
    utf8 = _is_utf8(data)
    multibyte = utf8 and not data.isascii()
    candidates = [(http_charset, "http")]
    if declarations:
        candidates.append((declared_charset(data), "declared"))
    for label, how in candidates:
        codec = codec_for(label)
        if not codec:
            continue
        if codec in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"):
            codec = "utf-8"  # an ASCII-compatible document cannot be UTF-16/32 (no zero bytes seen above)
        if multibyte and codec != "utf-8":
            log.debug("declared %s (%s) but the bytes are UTF-8; reading them as UTF-8", label, how)
            return "utf-8", "utf-8"
        if _try(data, codec) is not None:
            return codec, how
    if utf8:
        return "utf-8", "utf-8"
    detected = _detect(data)
    return (detected, "detected") if detected else ("cp1252", "fallback")


# What news is written in. charset-normalizer also proposes DOS and Mac code pages, which fit a short
# text as well as the right one does but are never what a web page or a news export uses.
_MULTIBYTE = {"gb18030", "big5hkscs", "big5", "cp932", "shift_jis", "euc_jp", "iso2022_jp", "cp949", "euc_kr", "johab",
              "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"}
_SINGLE_BYTE = {f"cp{n}" for n in range(1250, 1259)} | {f"iso8859-{n}" for n in range(2, 17)} | {"koi8-r", "koi8-u", "cp874"}


def _detect(data: bytes) -> str:
    """charset-normalizer's guess among the encodings news is written in, or "" when it has none.

    Among equally likely guesses windows-1252 wins (the web's default); a single-byte guess must read
    as some language, so noise-like bytes fall back to windows-1252/Latin-1 rather than to a random code page.
    """
    from charset_normalizer import from_bytes

    results = from_bytes(data)
    best = results.best()
    if best is None:
        return ""
    ties = [(m, codec_for(m.encoding)) for m in results if m.chaos <= best.chaos + 0.01]
    if any(c == "cp1252" for _, c in ties):
        return "cp1252"
    for m, c in ties:
        if c in _MULTIBYTE or (c in _SINGLE_BYTE and m.coherence > 0):
            return c
    return ""


def decode_bytes(data: bytes, source: str, charset: str = "", *, declarations: bool = True) -> str:
    """Text from bytes (see the module docstring); raises IngestError naming ``source`` for a binary file.

    ``charset`` is the HTTP Content-Type charset, if any; ``declarations=False`` skips in-document
    declarations (JSON is UTF-8 by definition, and its values may quote other pages' markup).
    """
    codec, how = detect_encoding(data, http_charset=charset, declarations=declarations)
    if data[:4096].count(0) and how != "bom":
        raise IngestError(source, "binary file, not text")
    for bom, c in _BOMS:
        if c == codec and data.startswith(bom):
            data = data[len(bom):]
            break
    text = _try(data, codec)
    if text is None:
        # cp1252 leaves five bytes undefined; Latin-1 maps every byte, so nothing is lost.
        text = data.decode("latin-1") if codec == "cp1252" else data.decode(codec, errors="replace")
    log.debug("%s: decoded as %s (%s)", source, codec, how)
    return _check_text(text, source)


def _check_text(text: str, source: str) -> str:
    """Reject decoded "text" that is mostly control characters or replacement marks (a binary)."""
    head = text[:4000]
    bad = sum(1 for ch in head if (ord(ch) < 32 and ch not in "\n\r\t\f") or ch == "\ufffd")
    if head and bad > max(40, len(head) * 0.05):
        raise IngestError(source, "binary file, not text")
    return text
