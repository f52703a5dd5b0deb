"""A real SMTP server for the mail tests (PyPI aiosmtpd), on 127.0.0.1 only.

Each accepted message is written to DIR as <n>.json: the envelope ("mail_from", "rcpt_tos"), the
AUTH login ("login", or null), the raw message ("data"), and its headers and text decoded by Python's
email package ("subject", "from", "to", "message_id", "body"), through a temporary file and a
rename, so a test that polls DIR never reads half a message.

  python3 smtp_server.py --port PORT --dir DIR [--reject] [--auth-user USER]

--reject answers every RCPT with 550 (a server that refuses the mail). --auth-user requires SMTP AUTH
(PLAIN or LOGIN, allowed without TLS here) as USER with the password in the environment variable
SMTP_TEST_PASSWORD, never on the command line. The server runs until it is killed.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, directory, reject):
        self.directory = directory
        self.reject = reject
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject:
            return "550 5.7.1 <%s>: Recipient address rejected: this test server refuses all mail" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        login = session.auth_data if isinstance(session.auth_data, str) else None
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": login,
            "data": envelope.original_content.decode("utf-8", errors="replace"),
            "subject": str(message["subject"] or ""),
            "from": str(message["from"] or ""),
            "to": str(message["to"] or ""),
            "message_id": str(message["message-id"] or ""),
            "body": message.get_content() if not message.is_multipart() else "",
        }
        final = os.path.join(self.directory, "%d.json" % self.count)
        temporary = final + ".tmp"
        with open(temporary, "w") as file:
            json.dump(record, file)
        os.rename(temporary, final)
        return "250 2.0.0 Ok: queued as test-%d" % self.count


def authenticator(expected_user, expected_password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == expected_user
            and auth_data.password.decode() == expected_password
        )
        if not ok:
            # handled=False: aiosmtpd answers 535 itself (True would leave the client waiting).
            return AuthResult(success=False, handled=False)
        # auth_data becomes session.auth_data: the login, recorded with each message.
        return AuthResult(success=True, auth_data=auth_data.login.decode())

    return check


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--reject", action="store_true")
    parser.add_argument("--auth-user")
    args = parser.parse_args()
    options = {}
    if args.auth_user:
        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
        options = {
            "authenticator": authenticator(args.auth_user, os.environ["SMTP_TEST_PASSWORD"]),
            "auth_required": True,
            "auth_require_tls": False,
        }
    controller = Controller(
        Handler(args.dir, args.reject), hostname="127.0.0.1", port=args.port, server_hostname="smtp.test", **options
    )
    controller.start()
    print("serving on 127.0.0.1:%d" % args.port, flush=True)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
