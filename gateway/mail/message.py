"""Building a notice email (pure): a plain-text part and an HTML part with the same words."""

from __future__ import annotations

import html
from email.message import EmailMessage
from email.utils import make_msgid


def html_body(text: str, subject: str) -> str:
    paragraphs = "".join(
        f"<p>{html.escape(p)}</p>" for p in text.replace("\r", "").split("\n") if p.strip()
    )
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head>"
        f'<body style="font-family:sans-serif;line-height:1.6">{paragraphs}</body></html>'
    )


def build(notice_id: str, sender: str, to: str, subject: str, text: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject or "交警提示"
    msg["Message-ID"] = make_msgid(idstring=notice_id, domain=sender.rpartition("@")[2] or None)
    msg["X-Gateway-Notice"] = notice_id
    msg.set_content(text)
    msg.add_alternative(html_body(text, subject), subtype="html")
    return msg
