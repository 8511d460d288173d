"""The sandbox's command-line options and its `--help` text.

Fault flags map one-to-one onto fault names (faults.py); a flag left out keeps the fault's
default. The help text names the credentials the sandbox trusts and its control API, so that
`redox-pipeline sandbox --help` is enough to start using it; docs/sandbox.md says more.
"""

from __future__ import annotations

import argparse
import re
import textwrap

from . import auth
from .faults import (
    DELIVERY_STATUSES,
    ERROR_BODIES,
    FAULT_DEFAULTS,
    GROUPS,
    SEND_REPLY_MODES,
    TOKEN_REPLY_MODES,
    WIRE_MODES,
)

DESCRIPTION = f"""\
A local stand-in for the Redox API, for tests, demos and benchmarks. It speaks Redox's OAuth
and legacy authentication, SEND (POST /endpoint), file upload (POST /upload, GET /blob/ID) and
the Platform API's log lookup (GET /platform/v1/organizations/ORG/logs/LOG_ID), records what it
receives, and can be told to misbehave (the fault flags below, or its control API). It never
writes message bodies to its log. Once listening it prints one line to stdout:
"sandbox listening on URL". `python -m pipeline.sandbox` is the same command.

Credentials it trusts without any flag:
  OAuth (client assertion signed with ES384): kid "{auth.DEFAULT_KID}", client id \
"{auth.DEFAULT_CLIENT_ID}";
    the private key is examples/sandbox-client-key.pem in the repository (public on purpose:
    never register it anywhere real). The assertion's aud must be URL/v2/auth/token.
  Legacy (POST /auth/authenticate, JSON): apiKey "{next(iter(auth.DEFAULT_LEGACY))}", \
secret "{next(iter(auth.DEFAULT_LEGACY.values()))}".
Your own key: --public-key KID=CLIENT_ID=PATH registers a PEM public key (RSA: sign with
RS384; EC P-384: sign with ES384) next to the default one; repeat it for several keys.
"""

EPILOG = """\
Control API (no authentication: keep the sandbox on loopback, the default):
  GET  /_sandbox/faults         the current faults, as JSON
  POST /_sandbox/faults         a JSON object of faults to change, e.g. {"fail_next": [503]};
                                unknown names and bad values are refused with 400
  POST /_sandbox/reset          faults back to their start-up values, records cleared
  POST /_sandbox/expire-tokens  every access token issued so far stops working
  GET  /_sandbox/records        what was received (sends, uploads, token_requests,
                                log_lookups, counts); ?bodies=1 adds each SEND's body
Faults that only make sense per test (queues such as fail_next, send_reply_next,
send_wire_next, delivery_overrides) are set through the control API only. Every fault is
described in docs/sandbox.md.

Exit status: 0 after SIGTERM or SIGINT, 1 when the port cannot be bound, 2 for bad options.
"""

_NUMBER = re.compile(r"^\d+(\.\d+)?$")


def _retry_after(text: str):
    """A plain number becomes seconds; anything else is kept as the header's text."""
    return float(text) if _NUMBER.match(text) else text


def _statuses(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"want statuses like 429,503, got {text!r}") from None


def _default(name: str) -> str:
    value = FAULT_DEFAULTS[name]
    return f"(default: {'off' if value is None else value})"


# (flag, fault name, argparse keyword arguments)
FAULT_FLAGS: list[tuple[str, str, dict]] = [
    ("--latency-ms", "latency_ms", dict(type=float, metavar="MS", help=(
        "sleep this long before answering /endpoint and /upload"))),
    ("--error-rate", "error_rate", dict(type=float, metavar="P", help=(
        "chance (0..1) that a SEND is answered with --error-status"))),
    ("--error-status", "error_status", dict(type=int, metavar="STATUS", help=(
        "the status --error-rate answers with"))),
    ("--rate-limit", "rate_limit_per_second", dict(type=int, metavar="N", help=(
        "answer 429 beyond N /endpoint + /upload requests in any second (with --retry-after "
        "when 429 is in --retry-after-statuses); 0 = off"))),
    ("--retry-after", "retry_after", dict(type=_retry_after, metavar="VALUE", help=(
        "Retry-After header on the statuses in --retry-after-statuses: seconds, or any text "
        "sent verbatim (inf, nan, -5, an HTTP date)"))),
    ("--retry-after-statuses", "retry_after_statuses", dict(type=_statuses, metavar="LIST",
        help="comma-separated error statuses that carry --retry-after, e.g. 429,503")),
    ("--token-ttl", "token_ttl_seconds", dict(type=int, metavar="SECONDS", help=(
        "lifetime of the access tokens issued"))),
    ("--refuse-credentials", "refuse_credentials", dict(action="store_true", default=None,
        help="every token endpoint answers 401")),
    ("--drop-after-accept-rate", "drop_after_accept_rate", dict(type=float, metavar="P", help=(
        "chance (0..1) that an accepted SEND is recorded, then the connection closed unanswered"
        ))),
    ("--seed", "seed", dict(type=int, help="seed for --error-rate and --drop-after-accept-rate")),
    ("--delivery-status", "delivery_status", dict(choices=DELIVERY_STATUSES, metavar="STATUS",
        help=(
        "the status the Platform log lookup reports for every Log ID"))),
    ("--send-limit-bytes", "send_limit_bytes", dict(type=int, metavar="N", help=(
        "a larger SEND body is answered 413"))),
    ("--upload-limit-bytes", "upload_limit_bytes", dict(type=int, metavar="N", help=(
        "a larger uploaded file is answered 413"))),
    ("--send-reply", "send_reply", dict(choices=SEND_REPLY_MODES, help=(
        "how every accepted SEND is answered: normal, or a 200 that is not an acceptance (an "
        "HTML login page, plain text, an empty body, JSON without Meta or Meta.Logs, too few "
        "Logs, Logs with bad IDs, Meta.Errors, JSON cut short); the SEND is still recorded"))),
    ("--token-reply", "token_reply", dict(choices=TOKEN_REPLY_MODES, help=(
        "how every issued token is answered (OAuth and legacy): normal, HTML, plain text, "
        "empty, not an object, no token, no lifetime, an error inside a 200, JSON cut short"))),
    ("--oauth-expires-in", "oauth_expires_in", dict(metavar="JSON", help=(
        "JSON text put verbatim as the OAuth reply's expires_in, e.g. '\"3600s\"', null, -1, "
        "1e309"))),
    ("--legacy-expires", "legacy_expires", dict(metavar="JSON", help=(
        "JSON text put verbatim as the legacy reply's expires, e.g. '\"tomorrow\"', 0"))),
    ("--access-token-value", "access_token_value", dict(metavar="TEXT", help=(
        "every access token issued is exactly this text (CR/LF or non-Latin-1 characters "
        "included); it works as a bearer token if a client manages to send it"))),
    ("--error-text", "error_text", dict(metavar="TEXT", help=(
        "replace the human text of every error reply (Meta.Errors[].Text, error_description, "
        "...), e.g. with patient data or ANSI escapes"))),
    ("--error-body", "error_body", dict(choices=ERROR_BODIES, metavar="KIND", help=(
        "error replies as the usual JSON, as plain text, or as an HTML page"))),
    *[(f"--{group}-trickle-bps", f"{group}_trickle_bps", dict(type=float, metavar="BPS", help=(
        f"answer {group} requests one byte at a time, BPS bytes per second at most; 0 = off")))
      for group in GROUPS],
    *[(f"--{group}-wire", f"{group}_wire", dict(choices=WIRE_MODES, help=(
        f"what happens on the wire to every {group} reply")))
      for group in GROUPS],
    ("--huge-reply-bytes", "huge_reply_bytes", dict(type=int, metavar="N", help=(
        "body size of a 'huge' reply (the reply padded with spaces, streamed)"))),
    ("--gzip-bomb-bytes", "gzip_bomb_bytes", dict(type=int, metavar="N", help=(
        "size a 'gzip_bomb' reply expands to (about N/1000 bytes on the wire)"))),
    ("--hang-seconds", "hang_seconds", dict(type=float, metavar="SECONDS", help=(
        "how long 'hang' and 'short_body_hang' hold a connection (less if the client "
        "closes)"))),
]

GROUP_HELP = textwrap.fill("Route groups for the wire and trickle flags: send = POST /endpoint, upload = "
              "POST /upload, token = /v2/auth/token, /auth/authenticate and /auth/refreshToken, "
              "platform = the Platform log lookup. Wire modes: normal; huge (padded to "
              "--huge-reply-bytes); gzip_bomb; cut_after_headers; cut_mid_body; short_body_hang "
              "(Content-Length 1000 bytes more than sent, then hang); hang (send nothing); "
              "no_reply (close at once). These apply to every reply of the group, errors too. "
                           "Without these flags the sandbox behaves like Redox.", width=90)


def build_parser() -> argparse.ArgumentParser:
    """The sandbox's argument parser (fault flags set `dest` to the fault's name)."""
    p = argparse.ArgumentParser(prog="redox-pipeline sandbox", description=DESCRIPTION,
                                epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    server = p.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    server.add_argument("--port", type=int, default=8787,
                        help="port to bind; 0 picks a free one (default: %(default)s)")
    server.add_argument("--allow-remote", action="store_true",
                        help="allow a --host that is not a loopback address")
    server.add_argument("--verbose", action="store_true",
                        help="log method, path and status of every request to stderr")
    server.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="json: the ready line and errors as JSON objects")
    peers = p.add_argument_group("clients and destinations")
    peers.add_argument("--public-key", action="append", default=[], metavar="KID=CLIENT_ID=PATH",
                       help="also trust this PEM public key (RSA or EC P-384) for OAuth "
                            "assertions with this kid from this client id; repeatable")
    peers.add_argument("--legacy-credentials", action="append", default=[],
                       metavar="KEY:SECRET",
                       help="also accept this legacy api key and secret; repeatable")
    peers.add_argument("--destination", action="append", default=None, metavar="UUID",
                       help="accept only these destination IDs, others get 403 (repeatable; "
                            "default: any UUID)")
    faults = p.add_argument_group("faults (also settable at run time: see the control API)",
                                  GROUP_HELP)
    for flag, name, kwargs in FAULT_FLAGS:
        kwargs = dict(kwargs)
        text = kwargs["help"]
        if "choices" in kwargs:  # the list goes in the help, not in a very long usage line
            kwargs.setdefault("metavar", "MODE")
            text += f"; one of: {', '.join(kwargs['choices'])}"
        kwargs["help"] = f"{text} {_default(name)}".replace("%", "%%")
        faults.add_argument(flag, dest=name, **kwargs)
    return p
