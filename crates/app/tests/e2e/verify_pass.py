"""An independent check of ConsultPay's video passes, as a video platform would make it,
with PyJWT (and cryptography for EdDSA).

    verify_pass.py verify --jwt JWT --at UNIX_SECONDS --room ROOM
                          (--secret SECRET | --jwks-url URL)
                          [--issuer consultpay] [--audience jitsi]
    verify_pass.py genkey PATH          # an Ed25519 PKCS#8 PEM private key

`verify` prints one JSON line: {"ok": true, "header": {...}, "claims": {...}} or
{"ok": false, "error": "<PyJWT's exception class, or InvalidRoom>"}. The times are
checked as of --at (the server's test clock), with PyJWT's own checks: the script only
tells PyJWT what "now" is. As a platform does, it checks the signature, `iss`, `aud`,
`nbf` and `exp` (not `iat`, which only says when the pass was made), and the room: a
pass admits to its own room only.
"""

import argparse
import datetime as _dt
import json
import sys

import jwt
import jwt.api_jwt


def as_of(seconds):
    """PyJWT reads the time with datetime.now(tz=...): answer the given instant."""

    class Frozen(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return _dt.datetime.fromtimestamp(seconds, tz=tz or _dt.timezone.utc)

    jwt.api_jwt.datetime = Frozen


def verify(args):
    as_of(args.at)
    header = jwt.get_unverified_header(args.jwt)
    if args.secret is not None:
        key, algorithms = args.secret, ["HS256"]
    else:
        key = jwt.PyJWKClient(args.jwks_url, cache_keys=False).get_signing_key_from_jwt(args.jwt).key
        algorithms = ["EdDSA"]
    claims = jwt.decode(
        args.jwt,
        key,
        algorithms=algorithms,
        audience=args.audience,
        issuer=args.issuer,
        options={
            "require": ["exp", "nbf", "iat", "iss", "aud", "sub", "room"],
            "verify_iat": False,
        },
    )
    if claims["room"] != args.room:
        raise LookupError("InvalidRoom")
    return {"ok": True, "header": header, "claims": claims}


def genkey(path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with open(path, "wb") as f:
        f.write(pem)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--jwt", required=True)
    v.add_argument("--at", type=int, required=True)
    v.add_argument("--room", required=True)
    v.add_argument("--secret")
    v.add_argument("--jwks-url")
    v.add_argument("--issuer", default="consultpay")
    v.add_argument("--audience", default="jitsi")
    g = sub.add_parser("genkey")
    g.add_argument("path")
    args = parser.parse_args()
    if args.command == "genkey":
        genkey(args.path)
        return
    try:
        out = verify(args)
    except LookupError as e:
        out = {"ok": False, "error": str(e)}
    except jwt.PyJWTError as e:
        out = {"ok": False, "error": type(e).__name__}
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
