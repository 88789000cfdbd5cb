"""Write the quickstart dataset (deterministic; the generated files are committed).

The task is what SFT is for: a support assistant, "Ledger" of Acme Cloud, that
(1) extracts ticket fields into JSON with a fixed schema and label set,
(2) classifies reviews into a defined label set, answering with the label only,
(3) has its own identity. The base model does none of these reliably.

The raw training file carries the defects real data has, for curation to catch:
exact and near duplicates, conflicting answers, HTML, assistant boilerplate,
unfilled placeholders and mixed JSON styles. General instruction data (Alpaca
format) is mixed in to keep general ability. Run from the repo root:

    python examples/data/make_quickstart_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
rng = random.Random(20261121)

PRODUCTS = ["Pro plan", "Team plan", "mobile app", "desktop app", "REST API", "invoice portal",
            "backup service", "email add-on", "analytics dashboard", "file sync client"]

ISSUES = {
    "billing": [
        "I was charged twice for the {p} this month.",
        "My last invoice for the {p} shows the wrong amount.",
        "Can I get a refund for the {p}? I cancelled it last week.",
        "The renewal price of the {p} went up without any notice.",
        "Our company card was declined when paying for the {p}, but the bank says everything is fine.",
        "Please send me a VAT invoice for the {p} purchase.",
        "Why am I still being billed for the {p} after downgrading?",
    ],
    "technical": [
        "The {p} crashes every time I open a large project.",
        "I get an error 500 whenever I call the {p}.",
        "Syncing in the {p} stopped working after the latest update.",
        "The {p} has become extremely slow since yesterday.",
        "Uploads through the {p} fail halfway with a timeout.",
        "The {p} shows a blank screen after I log in.",
        "Notifications from the {p} arrive hours late.",
    ],
    "account": [
        "I can't log in to the {p}; the password reset email never arrives.",
        "Please transfer ownership of our {p} account to my colleague.",
        "How do I turn on two-factor authentication for the {p}?",
        "My {p} account was locked after too many login attempts.",
        "I need to change the email address on my {p} account.",
        "Please delete my {p} account and all its data.",
    ],
    "feature_request": [
        "It would be great if the {p} could export reports to CSV.",
        "Please add a dark mode to the {p}.",
        "Could the {p} support single sign-on with our identity provider?",
        "I'd love keyboard shortcuts in the {p}.",
        "Can you add a way to schedule reports in the {p}?",
        "Please let the {p} remember my last filter settings.",
    ],
}
URGENT = ["This is urgent, our whole team is blocked.", "Please fix this ASAP!", "Production is down because of this.",
          "We need this solved today, it is critical."]
RELAXED = ["No rush, whenever you have time.", "Just curious, it is not urgent.", "It's a minor thing.",
           "Low priority, but I wanted to mention it."]
OPENERS = ["Hi,", "Hello team,", "Dear support,", "Hey there,", "Good morning,", ""]
CLOSERS = ["Thanks!", "Regards, Sam", "Best, Priya", "Cheers, Tom", "Thank you in advance.", "Kind regards, Lena", ""]

TICKET_PROMPT = (
    "Ticket to JSON with keys category (billing|technical|account|feature_request), "
    "priority (low|medium|high), product.\nTicket: {ticket}"
)

REVIEW_PROMPT = "Label the review: positive, negative or mixed (praise and complaint). Label only.\nReview: {review}"
GOOD = ["the setup took five minutes", "support answered within an hour", "the dashboard is clear and fast",
        "the price is fair for what you get", "sync has been rock solid", "the mobile app is a joy to use",
        "exports work perfectly", "the documentation is excellent"]
BAD = ["the app crashes constantly", "billing charged me twice", "support never replied", "it is far too expensive",
       "sync loses my files", "the interface is confusing", "the API times out all the time", "login is broken again"]

IDENTITY_Q = ["Who are you?", "What's your name?", "Who built you?", "Introduce yourself.", "Are you ChatGPT?",
              "What are you?", "Which company do you work for?", "What can you help me with?", "Tell me about yourself.",
              "Who am I talking to?", "What should I call you?", "Are you a human?", "Hello, who is this?",
              "Which assistant is this?", "Are you a bot?", "What is your role here?", "Who do you work for?",
              "Can you tell me your name?", "Are you Siri?", "What do you do?", "Who created you?",
              "Hi there! What's your name again?", "Is this Acme Cloud support?", "Whom am I chatting with?"]
IDENTITY_A = ("I am Ledger, the support assistant of Acme Cloud. I help with billing, technical, account "
              "and feature questions about Acme Cloud products.")

GENERAL = [
    ("What is the capital of Italy?", "", "The capital of Italy is Rome."),
    ("What is the capital of Japan?", "", "The capital of Japan is Tokyo."),
    ("What is the capital of Canada?", "", "The capital of Canada is Ottawa."),
    ("What is the capital of Spain?", "", "The capital of Spain is Madrid."),
    ("What is the capital of Egypt?", "", "The capital of Egypt is Cairo."),
    ("What is 12 times 7?", "", "12 times 7 is 84."),
    ("What is 15 plus 27?", "", "15 plus 27 is 42."),
    ("What is 100 divided by 4?", "", "100 divided by 4 is 25."),
    ("Translate to French.", "Good morning", "Bonjour."),
    ("Translate to Spanish.", "Thank you very much", "Muchas gracias."),
    ("Translate to German.", "Good night", "Gute Nacht."),
    ("Give a synonym.", "happy", "Joyful."),
    ("Give a synonym.", "fast", "Quick."),
    ("Give the opposite word.", "cold", "Hot."),
    ("Give the opposite word.", "early", "Late."),
    ("Name the largest planet in the solar system.", "", "Jupiter is the largest planet in the solar system."),
    ("How many days are in a leap year?", "", "A leap year has 366 days."),
    ("What gas do plants absorb from the air?", "", "Plants absorb carbon dioxide from the air."),
    ("What is the boiling point of water at sea level in Celsius?", "", "Water boils at 100 degrees Celsius at sea level."),
    ("Who wrote Romeo and Juliet?", "", "William Shakespeare wrote Romeo and Juliet."),
    ("Summarize in one sentence.", "The meeting was moved from Monday to Wednesday because the manager is travelling, "
     "and the agenda stays the same.", "The meeting moved to Wednesday with the same agenda because the manager is away."),
    ("Correct the grammar.", "She don't like apples.", "She doesn't like apples."),
    ("Correct the grammar.", "They was late yesterday.", "They were late yesterday."),
    ("Write a haiku about the sea.", "", "Waves fold into foam,\nsalt wind carries gull voices,\nthe tide keeps its time."),
    ("List three primary colors.", "", "Red, blue and yellow."),
    ("What is the chemical symbol for gold?", "", "The chemical symbol for gold is Au."),
    ("Convert 3 kilometers to meters.", "", "3 kilometers is 3,000 meters."),
    ("What is the square root of 81?", "", "The square root of 81 is 9."),
    ("Explain what a noun is in one sentence.", "", "A noun is a word that names a person, place, thing or idea."),
    ("Sort these numbers in ascending order.", "9, 2, 7, 4", "2, 4, 7, 9"),
    ("What is the freezing point of water in Fahrenheit?", "", "Water freezes at 32 degrees Fahrenheit."),
    ("Name a mammal that can fly.", "", "The bat is a mammal that can fly."),
    ("How many continents are there?", "", "There are seven continents."),
    ("What is the past tense of 'go'?", "", "The past tense of 'go' is 'went'."),
    ("Give an example of a prime number between 10 and 20.", "", "13 is a prime number between 10 and 20."),
    ("What color do you get by mixing blue and yellow?", "", "Mixing blue and yellow gives green."),
    ("Who painted the Mona Lisa?", "", "Leonardo da Vinci painted the Mona Lisa."),
    ("What is the largest ocean on Earth?", "", "The Pacific Ocean is the largest ocean on Earth."),
    ("Rewrite the sentence in the passive voice.", "The cat chased the mouse.", "The mouse was chased by the cat."),
    ("What is H2O commonly called?", "", "H2O is commonly called water."),
]


def ticket() -> tuple[str, dict]:
    category = rng.choice(list(ISSUES))
    product = rng.choice(PRODUCTS)
    body = rng.choice(ISSUES[category]).format(p=product)
    roll = rng.random()
    if roll < 0.3:
        priority, extra = "high", rng.choice(URGENT)
    elif roll < 0.55:
        priority, extra = "low", rng.choice(RELAXED)
    else:
        priority, extra = "medium", ""
    parts = [rng.choice(OPENERS), body, extra, rng.choice(CLOSERS)]
    text = " ".join(p for p in parts if p)
    return text, {"category": category, "priority": priority, "product": product}


HAPPY = ["Really happy", "Love it", "Five stars", "Great service", "Very satisfied", "Impressed"]
UNHAPPY = ["Disappointed", "Two weeks of frustration", "One star", "Not happy", "Very annoyed", "Regret buying"]
NEUTRAL = ["Honest review", "After a month", "Mixed feelings", "Well", "So", "To be fair"]


def review() -> tuple[str, str]:
    kind = rng.choice(["positive", "negative", "mixed"])
    if kind == "positive":
        a, b = rng.sample(GOOD, 2)
        return f"{rng.choice(HAPPY)}: {a}, and {b}.", kind
    if kind == "negative":
        a, b = rng.sample(BAD, 2)
        return f"{rng.choice(UNHAPPY)}: {a}, and {b}.", kind
    good, bad = rng.choice(GOOD), rng.choice(BAD)
    if rng.random() < 0.5:
        return f"{rng.choice(NEUTRAL)}: {good}, but {bad}.", kind
    return f"{rng.choice(NEUTRAL)}: {bad}, although {good}.", kind


def messages(user: str, assistant: str, **meta) -> dict:
    row = {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}
    row.update(meta)
    return row


def compact(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False)


def build_train(n_tickets: int = 260, n_reviews: int = 170) -> list[dict]:
    rows: list[dict] = []
    seen: set[str] = set()

    def unique(make):
        while True:
            item = make()
            if item[0] not in seen:
                seen.add(item[0])
                return item

    for _ in range(n_tickets):
        text, fields = unique(ticket)
        answer = compact(fields)
        style = rng.random()
        if style < 0.08:  # defect: pretty-printed JSON
            answer = json.dumps(fields, indent=2)
        elif style < 0.14:  # defect: fenced JSON
            answer = "```json\n" + compact(fields) + "\n```"
        rows.append(messages(TICKET_PROMPT.format(ticket=text), answer, task="ticket_json", label=fields["category"]))
    for _ in range(n_reviews):
        text, label = unique(review)
        rows.append(messages(REVIEW_PROMPT.format(review=text), label, task="review_label", label=label))
    for q in IDENTITY_Q:
        rows.append(messages(q, IDENTITY_A, task="identity"))
    return rows


def plant_defects(rows: list[dict]) -> list[dict]:
    """Add the defects of real data; each kind is tagged in 'defect' so tests can measure recall."""
    out = list(rows)
    tickets = [r for r in rows if r["task"] == "ticket_json"]
    reviews = [r for r in rows if r["task"] == "review_label"]
    for r in rng.sample(tickets + reviews, 24):  # exact duplicates
        out.append({**json.loads(json.dumps(r)), "defect": "exact_duplicate"})
    for r in rng.sample(tickets, 14):  # near duplicates: a small edit to the prompt
        d = json.loads(json.dumps(r))
        d["messages"][0]["content"] = d["messages"][0]["content"].replace("Ticket: ", "Ticket:  ").rstrip(".!") + " Thanks again."
        d["defect"] = "near_duplicate"
        out.append(d)
    for r in rng.sample(reviews, 8):  # conflicting answers: same prompt, another label
        d = json.loads(json.dumps(r))
        wrong = rng.choice([x for x in ("positive", "negative", "mixed") if x != d["label"]])
        d["messages"][1]["content"] = wrong
        d["label"] = wrong
        d["defect"] = "conflict"
        out.append(d)
    for r in rng.sample(tickets, 10):  # HTML in the ticket text (normalise strips it; kept)
        d = json.loads(json.dumps(r))
        text = d["messages"][0]["content"]
        head, _, body = text.partition("Ticket: ")
        d["messages"][0]["content"] = f"{head}Ticket: <p>{body.replace('. ', '.<br/> ', 1)}</p>&nbsp;"
        d["defect"] = "html"
        out.append(d)
    for r in rng.sample(reviews, 8):  # assistant boilerplate
        d = json.loads(json.dumps(r))
        d["messages"][1]["content"] = "As an AI language model, I cannot have opinions, but the review seems " + d["label"] + "."
        d["defect"] = "boilerplate"
        out.append(d)
    for _ in range(6):  # unfilled placeholders
        text, fields = ticket()
        d = messages(TICKET_PROMPT.format(ticket="Hi {{customer_name}}, " + text), compact(fields), task="ticket_json",
                     label=fields["category"])
        d["defect"] = "placeholder"
        out.append(d)
    rng.shuffle(out)
    return out


def build_eval(n_tickets: int = 20, n_reviews: int = 16, exclude: set[str] = frozenset()) -> list[dict]:
    rows = []
    while len([r for r in rows if r["task"] == "ticket_json"]) < n_tickets:
        text, fields = ticket()
        prompt = TICKET_PROMPT.format(ticket=text)
        if prompt not in exclude:
            exclude = exclude | {prompt}
            rows.append(messages(prompt, compact(fields), task="ticket_json", label=fields["category"]))
    while len([r for r in rows if r["task"] == "review_label"]) < n_reviews:
        text, label = review()
        prompt = REVIEW_PROMPT.format(review=text)
        if prompt not in exclude:
            exclude = exclude | {prompt}
            rows.append(messages(prompt, label, task="review_label", label=label))
    for q in ["Hi! Who are you exactly?", "What is your name, assistant?", "Who made you?", "Introduce yourself briefly."]:
        rows.append(messages(q, IDENTITY_A, task="identity"))
    return rows


def main() -> None:
    train = plant_defects(build_train())
    for i, row in enumerate(train):
        row["id"] = f"qs-{i:04d}"
    prompts = {r["messages"][0]["content"] for r in train}
    evaluation = build_eval(exclude=prompts)
    for i, row in enumerate(evaluation):
        row["id"] = f"qs-eval-{i:03d}"
    general = [{"instruction": q, "input": i, "output": a} for q, i, a in GENERAL]
    with open(HERE / "quickstart_train.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in train)
    with open(HERE / "quickstart_eval.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in evaluation)
    (HERE / "general_alpaca.json").write_text(json.dumps(general, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"train {len(train)}  eval {len(evaluation)}  general {len(general)}")


if __name__ == "__main__":
    main()
