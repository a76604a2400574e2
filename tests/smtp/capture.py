"""A real SMTP server (aiosmtpd) that keeps every message it accepts, for the email tests.

usage: capture.py PORT OUTDIR [USER:PASS]   (OUTDIR "-": keep nothing, for benchmarks)

Each accepted message becomes OUTDIR/<n>.eml (the bytes as received) and OUTDIR/<n>.json (the
envelope and the parsed parts), written before the server answers 250, so what a test reads is
exactly what the server took. Recipients whose local part starts with `reject-` get 550 at RCPT,
`tempfail-` get 451, `closing-` get 421 (and the connection is closed, RFC 5321 3.8: a relay that
will not take that recipient now, seen as the server going away). With USER:PASS, AUTH is required (over plain text: a local test server).
Prints `READY <port>` once listening.

A relay refusing everything: while OUTDIR/refuse holds `{"at": STEP, "reply": "4xx ...", "allow": N}`
(STEP: connect, MAIL, RCPT or DATA), every session gets `reply` at that step, after N more
transactions (counted at that step) went through as usual. A 421 closes the connection after it,
as RFC 5321 3.8 has it. Read at each step; written anew (other content), it counts N again;
removed, the server serves again.
"""
import asyncio
import email
import email.policy
import itertools
import json
import os
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

port, outdir = int(sys.argv[1]), sys.argv[2]
credentials = sys.argv[3].split(":", 1) if len(sys.argv) > 3 else None
counter = itertools.count(1)
control = {"text": None, "rule": None, "allow": 0}


def refusal(step):
    """The reply to refuse `step` with, per OUTDIR/refuse; None to go on as usual."""
    if outdir == "-":
        return None
    try:
        with open(os.path.join(outdir, "refuse")) as f:
            text = f.read()
    except FileNotFoundError:
        control.update(text=None, rule=None)
        return None
    if text != control["text"]:
        rule = json.loads(text)
        control.update(text=text, rule=rule, allow=rule.get("allow", 0))
    if control["rule"]["at"] != step:
        return None
    if control["allow"] > 0:
        control["allow"] -= 1
        return None
    return control["rule"]["reply"]


def refuse(server, reply):
    """Answers `reply`; a 421 then closes the channel, once the reply is written."""
    if reply.startswith("421"):
        asyncio.get_running_loop().call_soon(server.transport.close)
    return reply


def parts(msg):
    text = html = None
    attachments = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        ctype = part.get_content_type()
        if disposition == "attachment":
            attachments.append({"filename": part.get_filename(), "content_type": ctype, "size": len(part.get_payload(decode=True) or b"")})
        elif ctype == "text/plain" and text is None:
            text = part.get_content()
        elif ctype == "text/html" and html is None:
            html = part.get_content()
    return text, html, attachments


class Relay(SMTP):
    async def _handle_client(self):
        reply = refusal("connect")
        if reply is None:
            return await super()._handle_client()
        await self.push(reply)
        self.transport.close()


class Capture:
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = refusal("MAIL")
        if reply:
            return refuse(server, reply)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = refusal("RCPT")
        if reply:
            return refuse(server, reply)
        local = address.split("@")[0].lower()
        if local.startswith("reject-"):
            return "550 5.1.1 mailbox unavailable"
        if local.startswith("tempfail-"):
            return "451 4.3.0 try again later"
        if local.startswith("closing-"):
            return refuse(server, "421 4.4.5 Too many connections, closing transmission channel")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = refusal("DATA")
        if reply:
            return refuse(server, reply)
        n = next(counter)
        if outdir == "-":
            return "250 2.0.0 OK queued as %06d" % n
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        text, html, attachments = parts(msg)
        record = {
            "n": n,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": [[k, str(v)] for k, v in msg.items()],
            "subject": str(msg.get("Subject", "")),
            "message_id": str(msg.get("Message-ID", "")),
            "text": text,
            "html": html,
            "attachments": attachments,
            "auth": session.authenticated,
        }
        base = os.path.join(outdir, f"{n:06d}")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(raw)
        os.replace(base + ".eml.tmp", base + ".eml")
        with open(base + ".json.tmp", "w") as f:
            json.dump(record, f)
        os.replace(base + ".json.tmp", base + ".json")
        return "250 2.0.0 OK queued as %06d" % n


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and [auth_data.login.decode(), auth_data.password.decode()] == credentials
    return AuthResult(success=ok)


async def main():
    loop = asyncio.get_running_loop()
    kwargs = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False} if credentials else {}
    server = await loop.create_server(lambda: Relay(Capture(), hostname="capture.local", **kwargs), "127.0.0.1", port)
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
