"""The ``pii`` filter: e-mail addresses, phone numbers, IBANs and payment card numbers, dropped or masked.

A chat dump carries the personal data its users pasted — a signature with a
phone number, a CV with an e-mail address. Each kind is found by a pattern and
then *validated*, so that numbers that merely look alike stay:

* e-mail: ``local@domain.tld``; reserved and placeholder addresses are not
  personal (``example.com``/``.org``/``.net``, ``.test``, ``.example``,
  ``.invalid``, ``localhost``, ``your.name@``, ``john.doe@``, ``user@``);
* phone: libphonenumber's matcher (``phonenumbers``) with its ``VALID``
  leniency, so dates, versions, ids and sums are not numbers of any plan;
  fictional NANP ``555`` numbers are skipped, and so are numbers in code;
* IBAN: country code, check digits and the mod-97 checksum (``python-stdnum``);
  the textbook examples (``DE89 3704 0044 0532 0130 00``…) are skipped;
* payment card: 13-19 digits with an issuer prefix (Visa, Mastercard, Amex,
  Discover, JCB, Diners) and a valid Luhn check digit, outside code; the
  published test numbers (``4111 1111 1111 1111``…) are skipped.

An address or number that only an assistant turn contains is, in chat data,
mostly sample data the model made up ("John Doe, johndoe@abccompany.com"); it
counts only with ``answer_only: true``. What a user wrote counts in every turn.

``action: mask`` keeps the record with each finding replaced by ``[EMAIL]``,
``[PHONE]``, ``[IBAN]`` or ``[CREDIT_CARD]`` (counted as edited, not rejected).

>>> from sftlab.data.record import Conversation, Turn
>>> conv = Conversation([Turn("user", "Sign as Jane Roe, jane.roe@gmail.com"), Turn("assistant", "Done.")])
>>> PiiFilter().check(conv)
('pii_email', 'turn 1')
>>> find_pii("Mail info@example.com, build 1.2.3456.7890 on 2023-01-15, card 4111 1111 1111 1111")
[]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from sftlab.curate.steps.base import Decision
from sftlab.curate.steps.filters import Filter, Verdict
from sftlab.curate.steps.text import code_spans
from sftlab.data.record import Conversation, Record
from sftlab.recipe.sections.curation import PiiFilterConfig

KINDS = ("email", "phone", "iban", "credit_card")
_DIGIT = re.compile(r"\d")
PLACEHOLDER = {kind: f"[{kind.upper()}]" for kind in KINDS}

# Not after ":" or "/": "postgres://user:secret@host", "actions/cache@v3" are credentials and versions.
_EMAIL = re.compile(r"(?<![\w.+:/%-])([A-Za-z0-9._%+-]{1,64})@((?:[A-Za-z0-9-]{1,63}\.)+([A-Za-z]{2,24}))\b")
# "icon@2x.png" is a file name: the "domain" ends in a file type.
_FILE_TLD = re.compile(r"^(?:png|jpe?g|gif|svg|webp|ico|js|ts|css|map|py|json|html)$")
_RESERVED_DOMAIN = re.compile(
    r"(?:^|\.)(?:example\.(?:com|org|net|edu)|[\w-]+\.(?:test|example|invalid|localhost|local)|"
    r"(?:domain|yourdomain|yourcompany|company|mycompany|email|mail|website|yoursite|site|test|sample|"
    r"acme|foo|bar|xyz|emailaddress|youremail|yourwebsite)\.com|[\w-]+\.(?:iam\.)?gserviceaccount\.com)$",
    re.IGNORECASE,
)
_PLACEHOLDER_LOCAL = re.compile(
    r"^(?:your[._-]?(?:name|email|mail|username)?|you|user(?:name)?|name|email|someone|somebody|"
    r"first[._-]?(?:name)?[._-]?last(?:name)?|firstname|lastname|john[._-]?doe|jane[._-]?doe|johndoe|janedoe|"
    r"(?:john|jane)[._-]?(?:doe|smith)|test|foo|bar|abc|xyz|me|git|root|ubuntu|ec2-user|pi|x+)$",
    re.IGNORECASE,
)
# Addresses of a role, not a person: an organisation publishes them to be written to.
_ROLE_LOCAL = re.compile(
    r"^(?:info|support|sales|admin|administrator|hello|hi|contact|contactus|help|helpdesk|team|media|press|office|"
    r"enquiries|enquiry|inquiries|inquiry|billing|accounts|careers|jobs|hr|recruiting|marketing|service|services|"
    r"customerservice|customer[._-]?care|feedback|webmaster|postmaster|hostmaster|privacy|legal|security|abuse|"
    r"noreply|no[._-]reply|donotreply|replies|reply|orders|booking|bookings|reservations|events|news|newsletter|"
    r"editor|editors|membership|partners|investors|ir|studio|general|mail|email|survey|surveys|warehouse|shipping|"
    r"returns|accounting|finance|purchasing|procurement|operations|admissions|registrar|reception|appointments)$",
    re.IGNORECASE,
)
_MASKED = re.compile(r"[xX]{3,}")  # "mailgun@sandboxXXXXXXXX.mailgun.org": a redacted template
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_EXAMPLE_IBANS = {
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "GB29NWBK60161331926819",
    "GB33BUKB20201555555555",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "CH9300762011623852957",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "BE68539007547034",
}
# Starts on four digits (cheap to rule out); the boundaries are checked on the few matches (_glued).
_CARD = re.compile(r"\d{4}(?:[ -]?\d){9,15}")
# As cards are printed: 4-4-4-4(-3), Amex 4-6-5, or one run of digits next to a word naming a card.
_CARD_SHAPE = re.compile(r"^(?:\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5}|\d{13,19})$")
_CARD_WORD = re.compile(r"(?:card|visa|mastercard|amex|credit|debit|\bcc\b|payment)", re.IGNORECASE)
_CARD_PREFIX = re.compile(
    r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|6011|65|64[4-9]|35|30[0-5]|36|38)"
)
_TEST_CARDS = {
    "4111111111111111",
    "4242424242424242",
    "4012888888881881",
    "4000056655665556",
    "4000000000000002",
    "4222222222222",
    "5555555555554444",
    "5105105105105100",
    "2223003122003222",
    "378282246310005",
    "371449635398431",
    "378734493671000",
    "6011111111111117",
    "6011000990139424",
    "3530111333300000",
    "3566002020360505",
    "30569309025904",
    "38520000023237",
}


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


def _emails(text: str) -> list[Finding]:
    out = []
    for m in _EMAIL.finditer(text):
        local, domain, tld = m.group(1), m.group(2), m.group(3).lower()
        if _FILE_TLD.match(tld) or _RESERVED_DOMAIN.search(domain) or _MASKED.search(m.group(0)):
            continue
        if _PLACEHOLDER_LOCAL.match(local) or _ROLE_LOCAL.match(re.split(r"[._-]", local)[0]):
            continue
        if "://" in _token_before(text, m.start()):
            continue  # user:password@host inside a URL (also when Markdown made the rest a mailto link)
        if not _PERSONAL_MAIL.match(domain) and _organisation_before(text, m.start()):
            continue  # an organisation's address listed under its name or website
        out.append(Finding("email", m.start(), m.end()))
    return out


def _token_before(text: str, start: int) -> str:
    """The text from the last space or quote before ``start`` up to it."""
    i = start
    while i > 0 and not text[i - 1].isspace() and text[i - 1] not in "\"'<(":
        i -= 1
    return text[i:start]


# How people write a phone number: with a "+" country code, or in groups (415-231-7788, (415) 231 7788,
# 020 7946 0958). A bare run of digits is more often an id, a count or a timestamp.
_PHONE_SHAPE = re.compile(
    r"^(?:\+\s?\d[\d\s().\-\u00a0\u202f]{6,}\d|\+\d{10,14}|(?:1[\s.-])?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}|"
    r"\(?0\d{1,4}\)?[\s.-]\d{2,4}[\s.-]?\d{3,4}(?:[\s.-]\d{2,4})?)$"
)
# An organisation's published line: a website or a company word shortly before the number.
_ORGANISATION = re.compile(
    r"https?://(?!(?:www\.)?linkedin)|\bwww\.(?!linkedin)|\b(?:LLC|Inc|Ltd|Limited|Corp|Corporation|Company|GmbH|"
    r"Association|Federation|Department|Office|Support|Customer Service|Headquarters|HQ|Hotline|Helpline|"
    r"Reception|Toll[- ]?free|Center|Centre|Group|Council|Agency|Ministry)\b",
    re.IGNORECASE,
)
_ORGANISATION_WINDOW = 120
_PERSONAL_MAIL = re.compile(
    r"^(?:g(?:oogle)?mail|yahoo|hotmail|outlook|live|msn|icloud|me|aol|proton(?:mail)?|gmx|web|qq|163|126|naver|"
    r"daum|mail|yandex|zoho)\.",
    re.IGNORECASE,
)
_PHONE_NEIGHBOUR = re.compile(r"[\w./\\_=#:-]")  # glued to a path, an id, a version or a sum
_PHONE_CONTEXT = 40  # characters either side of a hint that the matcher sees
# Implied by every _PHONE_SHAPE: a text without it has no number worth the matcher's (slow) scan.
_PHONE_HINT = re.compile(r"\+\s?\d|\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}|0\d{1,4}\)?[\s.-]\d{2,4}[\s.-]?\d{3,4}")


def _phones(text: str, region: str) -> list[Finding]:
    import phonenumbers

    if _PHONE_HINT.search(text) is None:
        return []
    business = {
        phonenumbers.PhoneNumberType.TOLL_FREE,
        phonenumbers.PhoneNumberType.SHARED_COST,
        phonenumbers.PhoneNumberType.UAN,
        phonenumbers.PhoneNumberType.PREMIUM_RATE,
    }
    out = []
    for start, m in _phone_matches(text, region):
        begin, end = start + m.start, start + m.end
        raw = m.raw_string.strip()
        before = text[begin - 1] if begin > 0 else " "
        if not _PHONE_SHAPE.match(raw) or _PHONE_NEIGHBOUR.match(before) or _glued_after(text, end):
            continue
        national = str(m.number.national_number)
        if m.number.country_code == 1 and national[3:6] == "555":
            continue  # NANP's fictional exchange (films, books, documentation)
        if phonenumbers.number_type(m.number) in business or _organisation_before(text, begin):
            continue  # free-phone lines and numbers listed under a website or company name are not a person's
        out.append(Finding("phone", begin, end))
    return out


def _phone_matches(text: str, region: str):
    """libphonenumber's matches, looked for only around the places a phone shape could be (its full scan of
    a long text is the slowest part of this filter): ``(offset of the window, match)``."""
    import phonenumbers

    windows: list[list[int]] = []
    for hint in _PHONE_HINT.finditer(text):
        lo, hi = max(0, hint.start() - _PHONE_CONTEXT), min(len(text), hint.end() + _PHONE_CONTEXT)
        if windows and lo <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], hi)
        else:
            windows.append([lo, hi])
    for lo, hi in windows:
        for m in phonenumbers.PhoneNumberMatcher(text[lo:hi], region, leniency=phonenumbers.Leniency.VALID):
            yield lo, m


def _organisation_before(text: str, start: int) -> bool:
    return _ORGANISATION.search(text, max(0, start - _ORGANISATION_WINDOW), start) is not None


def _glued(text: str, start: int, end: int) -> bool:
    """A digit run that is part of something longer: a word, a decimal, a version, an id with dashes."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return (
        before.isalnum()
        or before in "_.-"
        or after.isalnum()
        or after in "_-"
        or text[end : end + 2][:1] == "."
        and text[end + 1 : end + 2].isdigit()
    )


def _glued_after(text: str, end: int) -> bool:
    """The number goes on after ``end``: a word character, a path, or ".5" / ":30" (a sentence's full stop is fine)."""
    after = text[end : end + 2]
    if not after:
        return False
    if after[0] in ".:," and (len(after) < 2 or not after[1].isdigit()):
        return False
    return bool(_PHONE_NEIGHBOUR.match(after[0]))


def _ibans(text: str) -> list[Finding]:
    from stdnum import iban

    out = []
    for m in _IBAN.finditer(text):
        compact = m.group(0).replace(" ", "")
        if compact not in _EXAMPLE_IBANS and iban.is_valid(compact):
            out.append(Finding("iban", m.start(), m.end()))
    return out


def _cards(text: str) -> list[Finding]:
    from stdnum import luhn

    out = []
    for m in _CARD.finditer(text):
        raw = m.group(0)
        if _glued(text, m.start(), m.end()):
            continue
        digits = re.sub(r"\D", "", raw)
        if not _CARD_SHAPE.match(raw) or not 13 <= len(digits) <= 19:
            continue
        if raw.isdigit() and not _CARD_WORD.search(text, max(0, m.start() - 60), m.start()):
            continue  # a bare run of digits is an id unless the text says it is a card
        if digits in _TEST_CARDS or len(set(digits)) < 4 or not _CARD_PREFIX.match(digits):
            continue
        if luhn.is_valid(digits):
            out.append(Finding("credit_card", m.start(), m.end()))
    return out


def _in_code(start: int, end: int, code: list[tuple[int, int]]) -> bool:
    return any(s < end and start < e for s, e in code)


def find_pii(text: str, kinds: tuple[str, ...] | list[str] = KINDS, region: str = "US") -> list[Finding]:
    """Every finding in ``text``, in order, overlapping ones merged into the first (a card inside an IBAN)."""
    if not text or "@" not in text and _DIGIT.search(text) is None:
        return []
    found: list[Finding] = []
    if "email" in kinds and "@" in text:
        found += _emails(text)
    if "iban" in kinds:
        found += _ibans(text)
    numbers = (_cards(text) if "credit_card" in kinds else []) + (
        _phones(text, region) if "phone" in kinds else []
    )
    if numbers:  # numbers in code are ids, constants and test data; code is found only when it matters
        code = code_spans(text)
        found += [f for f in numbers if not _in_code(f.start, f.end, code)]
    found.sort(key=lambda f: (f.start, -f.end))
    merged: list[Finding] = []
    for f in found:
        if not merged or f.start >= merged[-1].end:
            merged.append(f)
    return merged


def mask(text: str, findings: list[Finding]) -> str:
    """``text`` with each finding replaced by its placeholder.

    >>> mask("write to ann@uni.edu", find_pii("write to ann@uni.edu"))
    'write to [EMAIL]'
    """
    for f in reversed(findings):
        text = text[: f.start] + PLACEHOLDER[f.kind] + text[f.end :]
    return text


class PiiFilter(Filter):
    """``pii_email`` / ``pii_phone`` / ``pii_iban`` / ``pii_credit_card`` in any turn; or masked (``action: mask``)."""

    config_class = PiiFilterConfig

    def __init__(self, cfg=None):
        cfg = cfg or PiiFilterConfig()
        super().__init__(cfg)
        if cfg.action == "mask":
            self.action = "drop"  # nothing is removed: process() edits instead of rejecting

    @cached_property
    def _kinds(self) -> tuple[str, ...]:
        return tuple(self.cfg.kinds)

    def _find(self, text: str) -> list[Finding]:
        return find_pii(text, self._kinds, self.cfg.phone_region)

    def _findings(self, record: Record) -> list[tuple[int, list[Finding]]]:
        """``(turn number, findings)`` per text that has any, honouring ``answer_only``."""
        texts = _texts(record)
        found = [(n, f) for n, text in texts if (f := self._find(text))]
        if self.cfg.answer_only or not isinstance(record, Conversation):
            return found
        # What only an answer contains is usually sample data the model made up ("John Doe, ABC Company");
        # what a user wrote, and the answer repeats, is real.
        prompts = "\n".join(text for n, text in texts if n == 0 or record.turns[n - 1].role != "assistant")
        kept = []
        for n, findings in found:
            if n and record.turns[n - 1].role == "assistant":
                findings = [f for f in findings if _value(texts, n, f) in prompts]
            if findings:
                kept.append((n, findings))
        return kept

    def check(self, record: Record) -> Verdict:
        found = self._findings(record)
        if not found:
            return None
        number, findings = found[0]
        return f"pii_{findings[0].kind}", "system prompt" if number == 0 else f"turn {number}"

    def process(self, record: Record) -> Decision:
        if self.cfg.action != "mask":
            return super().process(record)
        found = self._findings(record)
        for number, findings in found:
            if not isinstance(record, Conversation):
                record.text = mask(record.text, findings)
            elif number == 0:
                record.system = mask(record.system or "", findings)
            else:
                turn = record.turns[number - 1]
                turn.content = mask(turn.content, findings)
        return Decision(record, edited=bool(found))


def _value(texts: list[tuple[int, str]], number: int, finding: Finding) -> str:
    return dict(texts)[number][finding.start : finding.end]


def _texts(record: Record) -> list[tuple[int, str]]:
    """``(turn number, text)``: 0 is the system prompt; a text record is turn 1."""
    if not isinstance(record, Conversation):
        return [(1, record.text)]
    texts = [(0, record.system)] if record.system else []
    return texts + [(i, t.content) for i, t in enumerate(record.turns, 1)]
