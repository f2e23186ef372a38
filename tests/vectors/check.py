#!/usr/bin/env python3
"""Independent check of the zddm key-encoding v1 test vectors.

Written from docs/key-encoding.md alone (no reference to the Rust code), so that
the two implementations can only agree by both following the spec.

Usage: python3 tests/vectors/check.py [PATH]   (default: key-encoding-v1.json here)
Python 3.11, standard library only.
"""
import argparse
import hashlib
import json
import pathlib
import re
import sys
import uuid

U32_LIMIT = 2**32
PPM_FULL = 1_000_000


class EncodeError(Exception):
    """The tree is malformed or not encodable; reported as a failure of its case."""


# --- Section 1: values -------------------------------------------------------------------------

# kind -> (min, max, width in bytes, signed). Every integer up to 64 bits is *widened* to 8 bytes:
# u8 255 and u64 255 have the same bytes. usize/isize are taken as 64-bit (widened to u64/i64).
INT_KINDS = {
    **{k: (0, 2**bits - 1, 8, False) for k, bits in
       [("u8", 8), ("u16", 16), ("u32", 32), ("u64", 64), ("usize", 64)]},
    **{k: (-(2**(bits - 1)), 2**(bits - 1) - 1, 8, True) for k, bits in
       [("i8", 8), ("i16", 16), ("i32", 32), ("i64", 64), ("isize", 64)]},
    "u128": (0, 2**128 - 1, 16, False),
    "i128": (-(2**127), 2**127 - 1, 16, True),
}
DECIMAL = re.compile(r"-?[0-9]+", re.ASCII)  # no "+", spaces, "_" or non-ASCII digits (int() allows them)
HEX = re.compile(r"(?:[0-9a-f]{2})*", re.ASCII)  # the spec says: lowercase, no separators
UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", re.ASCII)


def u32_len(n: int) -> bytes:
    """A length or count as a u32. 2**32 or more is an error, never truncated."""
    if n >= U32_LIMIT:
        raise EncodeError(f"length/count {n} does not fit a u32")
    return n.to_bytes(4, "big")


def s(b: bytes) -> bytes:
    """s(x): u32 byte length of x, then x."""
    return u32_len(len(b)) + b


def utf8(text: str) -> bytes:
    # Text is encoded exactly as given: NO Unicode normalisation ("é" != "e\u0301").
    # A lone surrogate (possible via JSON "\ud800") is not a Unicode scalar value: reject it.
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise EncodeError(f"text is not valid Unicode (lone surrogate?): {text!r}") from e


def parse_int(kind: str, v) -> int:
    lo, hi, _, _ = INT_KINDS[kind]
    if not isinstance(v, str) or not DECIMAL.fullmatch(v):
        raise EncodeError(f"{kind}: expected a decimal string, got {v!r}")
    n = int(v)
    if not lo <= n <= hi:
        raise EncodeError(f"{kind}: {v} is out of range [{lo}, {hi}]")
    return n


def encode(tree) -> bytes:
    """Encode a typed tree (section 4 table) to key bytes (section 1 table)."""
    if not isinstance(tree, dict) or len(tree) != 1:
        raise EncodeError(f"a tree must be an object with exactly one member, got {tree!r}")
    (kind, v), = tree.items()

    if kind in INT_KINDS:
        _, _, width, signed = INT_KINDS[kind]
        return parse_int(kind, v).to_bytes(width, "big", signed=signed)
    if kind == "bool":
        if not isinstance(v, bool):  # JSON 0/1 are not booleans
            raise EncodeError(f"bool: expected true/false, got {v!r}")
        return b"\x01" if v else b"\x00"
    if kind == "char":
        # Exactly one code point, and a scalar value (surrogates excluded): 4-byte u32.
        if not isinstance(v, str) or len(v) != 1 or 0xD800 <= ord(v) <= 0xDFFF:
            raise EncodeError(f"char: expected exactly one Unicode scalar value, got {ascii(v)}"
                              + (f" ({len(v)} code point(s))" if isinstance(v, str) else ""))
        return ord(v).to_bytes(4, "big")
    if kind == "str":
        if not isinstance(v, str):
            raise EncodeError(f"str: expected a string, got {v!r}")
        return s(utf8(v))
    if kind == "bytes":
        if not isinstance(v, str) or not HEX.fullmatch(v):
            raise EncodeError(f"bytes: expected lowercase hex, got {v!r}")
        return s(bytes.fromhex(v))
    if kind == "uuid":
        # Hyphenated form only (uuid.UUID would also take braces, "urn:uuid:", no hyphens).
        if not isinstance(v, str) or not UUID_TEXT.fullmatch(v):
            raise EncodeError(f"uuid: expected a hyphenated UUID, got {v!r}")
        return s(uuid.UUID(v).bytes)  # a byte string: u32 length 16, then RFC 4122 order
    if kind == "option":
        # None -> 00; Some(x) -> 01 ‖ x. So None != Some(0) and Some(None) = 01 00 != None = 00.
        return b"\x00" if v is None else b"\x01" + encode(v)
    if kind == "seq":
        if not isinstance(v, list):
            raise EncodeError(f"seq: expected a list, got {v!r}")
        return u32_len(len(v)) + b"".join(encode(t) for t in v)
    if kind in ("tuple", "struct"):
        # Fields concatenated, nothing between or around them; empty -> no bytes at all.
        if not isinstance(v, list):
            raise EncodeError(f"{kind}: expected a list, got {v!r}")
        return b"".join(encode(t) for t in v)
    if kind == "enum":
        if not isinstance(v, dict) or set(v) != {"tag", "fields"}:
            raise EncodeError(f"enum: expected {{\"tag\": N, \"fields\": [...]}}, got {v!r}")
        tag, fields = v["tag"], v["fields"]
        if isinstance(tag, bool) or not isinstance(tag, int) or not 0 <= tag < U32_LIMIT:
            raise EncodeError(f"enum: tag must be an integer in u32 range, got {tag!r}")
        if not isinstance(fields, list):
            raise EncodeError(f"enum: fields must be a list, got {fields!r}")
        return tag.to_bytes(4, "big") + b"".join(encode(t) for t in fields)
    raise EncodeError(f"unknown tree kind {kind!r}")


# --- Section 2: the bucket ---------------------------------------------------------------------

def prefix(salt: str) -> bytes:
    """P = s("zddm/v1") ‖ s(salt), zero-padded to a multiple of 64 bytes."""
    if not isinstance(salt, str):
        raise EncodeError(f"salt must be a string, got {salt!r}")
    p = s(b"zddm/v1") + s(utf8(salt))
    # (-len) % 64 is 0 when len(P) is already a multiple of 64: then nothing is added.
    return p + b"\x00" * (-len(p) % 64)


def bucket(salt: str, key_bytes: bytes) -> int:
    # Plain hash of the whole message (no midstate): the spec says both give the same result.
    digest = hashlib.sha256(prefix(salt) + key_bytes).digest()
    return int.from_bytes(digest[:8], "big")


# --- Section 3: admission ----------------------------------------------------------------------

def threshold(ppm) -> int:
    if isinstance(ppm, bool) or not isinstance(ppm, int) or not 0 <= ppm <= PPM_FULL:
        raise EncodeError(f"ppm must be an integer in [0, 1000000], got {ppm!r}")
    return ppm * 2**64 // PPM_FULL  # exact integers; ppm = 1e6 gives 2**64, admitting every bucket


def admitted(bucket_: int, ppm: int) -> bool:
    result = bucket_ < threshold(ppm)
    # The spec's division-free form must agree; a cheap self-check of this script.
    assert result == ((bucket_ + 1) * PPM_FULL <= ppm * 2**64)
    return result


def parse_u64(name: str, v) -> int:
    if not isinstance(v, str) or not DECIMAL.fullmatch(v) or not 0 <= int(v) < 2**64:
        raise EncodeError(f"{name} must be a decimal u64 string, got {v!r}")
    return int(v)


# --- Checking the vector file ------------------------------------------------------------------

def check_salt(e) -> list[str]:
    got = prefix(e["salt"]).hex()
    return [] if got == e["prefix"] else [f"prefix: expected {e['prefix']}, got {got}"]


def check_key(e) -> list[str]:
    errs = []
    got_bytes = encode(e["key"])
    if got_bytes.hex() != e["bytes"]:
        errs.append(f"bytes: expected {e['bytes']}, got {got_bytes.hex()}")
    b = bucket(e["salt"], got_bytes)
    if str(b) != e["bucket"]:
        errs.append(f"bucket: expected {e['bucket']}, got {b} (sha256 prefix {b:016x})")
    if not isinstance(e["admission"], list):
        raise EncodeError("admission must be a list")
    for a in e["admission"]:
        got = admitted(b, a["ppm"])
        if got != a["admitted"]:
            errs.append(f"admission ppm={a['ppm']}: expected {a['admitted']}, got {got} "
                        f"(bucket {b}, threshold {threshold(a['ppm'])})")
    return errs


def check_threshold(e) -> list[str]:
    errs = []
    t = threshold(e["ppm"])
    if str(t) != e["threshold"]:
        errs.append(f"threshold: expected {e['threshold']}, got {t}")
    b = parse_u64("bucket", e["bucket"])
    got = admitted(b, e["ppm"])
    if got != e["admitted"]:
        errs.append(f"admitted: expected {e['admitted']}, got {got} (bucket {b}, threshold {t})")
    return errs


def no_duplicate_members(pairs):
    # json.loads would silently keep the last of {"u8": "1", "u8": "2"}; refuse instead.
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"duplicate member {k!r} in a JSON object")
        seen[k] = v
    return seen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=pathlib.Path(__file__).parent / "key-encoding-v1.json")
    path = pathlib.Path(ap.parse_args().path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_duplicate_members)
    except (OSError, ValueError) as e:
        print(f"check.py: cannot read {path}: {e}", file=sys.stderr)
        return 1
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list) or not doc["keys"]:
        print(f"check.py: {path} has no key cases; refusing to report success", file=sys.stderr)
        return 1
    if not all(isinstance(doc.get(k, []), list) for k in ("salts", "thresholds")):
        print(f"check.py: \"salts\" and \"thresholds\" must be lists", file=sys.stderr)
        return 1
    if doc.get("spec") != "zddm key encoding v1":
        print(f"check.py: unexpected \"spec\": {doc.get('spec')!r}", file=sys.stderr)
        return 1

    cases = []
    for i, e in enumerate(doc.get("salts", [])):
        cases.append((f"salts[{i}] salt={e.get('salt')!r}" if isinstance(e, dict) else f"salts[{i}]",
                      check_salt, e))
    for i, e in enumerate(doc["keys"]):
        cases.append((f"keys[{i}] {e.get('name')}" if isinstance(e, dict) else f"keys[{i}]", check_key, e))
    for i, e in enumerate(doc.get("thresholds", [])):
        cases.append((f"thresholds[{i}] ppm={e.get('ppm')}" if isinstance(e, dict) else f"thresholds[{i}]",
                      check_threshold, e))

    passed = failed = 0
    for name, check, entry in cases:
        try:
            errs = check(entry)
        except EncodeError as e:
            errs = [f"error: {e}"]
        except KeyError as e:
            errs = [f"malformed entry: missing member {e}"]
        except (TypeError, ValueError, AttributeError) as e:  # any other malformed vector entry
            errs = [f"malformed entry: {type(e).__name__}: {e}"]
        if errs:
            failed += 1
            print(f"FAIL {name}")
            for msg in errs:
                print(f"    {msg}")
        else:
            passed += 1
    print(f"check.py: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
