"""``synth:`` — generate SFT data with a teacher behind an OpenAI-compatible endpoint."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sftlab.recipe.base import Section

DEFAULT_BLOCKED_KEYWORDS = [
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
    "video",
    "audio",
    "music",
    "flowchart",
    "diagram",
]


class TeacherSection(Section):
    base_url: str = "http://127.0.0.1:8000/v1"
    """OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, ``sftlab serve``), ending in ``/v1``."""
    model: str = "default"
    """Model name sent with each request (what the endpoint calls the teacher)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key; local servers accept any key, so it may be unset."""
    concurrency: int = Field(default=4, ge=1, le=256)
    """Requests in flight at once."""
    max_retries: int = Field(default=5, ge=0)
    """Retries on 429, 5xx, timeouts and connection errors before the item fails."""
    backoff_s: float = Field(default=1.0, ge=0)
    """First retry delay; doubles each retry, with random jitter, up to ``max_backoff_s``."""
    max_backoff_s: float = Field(default=30.0, ge=0)
    """Longest delay between two retries."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Seconds to wait for one response before it counts as a timeout."""
    temperature: float = Field(default=0.7, ge=0)
    """Sampling temperature of the teacher."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    """Nucleus sampling of the teacher."""
    max_tokens: int = Field(default=512, ge=1)
    """Longest teacher answer, in tokens."""
    price_input_per_1m: float = Field(default=0.0, ge=0)
    """Price of 1M prompt tokens (any currency), for the cost estimate."""
    price_output_per_1m: float = Field(default=0.0, ge=0)
    """Price of 1M completion tokens, for the cost estimate."""


class SelfInstructSection(Section):
    seed_tasks: str | None = None
    """JSONL of seed tasks (``instruction``, ``input``, ``output``, ``is_classification``); default: the built-in pool."""
    num_instructions: int = Field(default=100, ge=1)
    """Stop once this many new tasks are kept."""
    requests_per_round: int = Field(default=8, ge=1)
    """Instruction-generation requests sent together in one round."""
    tasks_per_request: int = Field(default=5, ge=1, le=50)
    """New tasks asked for in each instruction-generation request."""
    seed_examples: int = Field(default=3, ge=0)
    """Seed tasks shown as examples in each request."""
    generated_examples: int = Field(default=2, ge=0)
    """Already generated tasks shown as examples (once there are some)."""
    max_rounds: int = Field(default=50, ge=1)
    """Give up after this many rounds even if ``num_instructions`` is not reached."""
    rouge_threshold: float = Field(default=0.7, gt=0, le=1)
    """An instruction with ROUGE-L at or above this against the pool is too similar and dropped."""
    min_words: int = Field(default=3, ge=1)
    """Shorter instructions are dropped."""
    max_words: int = Field(default=150, ge=1)
    """Longer instructions are dropped."""
    blocked_keywords: list[str] = Field(default_factory=lambda: list(DEFAULT_BLOCKED_KEYWORDS))
    """Tasks mentioning these (whole words) need something a text model cannot see or make; dropped."""


EvolOperation = Literal["add_constraints", "deepen", "concretize", "increase_reasoning", "breadth"]


class EvolInstructSection(Section):
    inputs: str | None = None
    """Records whose first user message is evolved; default: the built-in seed tasks."""
    limit: int | None = Field(default=None, ge=1)
    """Evolve at most this many input prompts."""
    rounds: int = Field(default=2, ge=1)
    """Generations of evolution; each round evolves the survivors of the previous one."""
    operations: list[EvolOperation] = Field(
        default_factory=lambda: ["add_constraints", "deepen", "concretize", "increase_reasoning", "breadth"]
    )
    """Evolutions to pick from (uniformly, seeded): four in-depth ones and ``breadth`` (a new, rarer task)."""
    max_parent_similarity: float = Field(default=0.9, gt=0, le=1)
    """An evolved prompt with ROUGE-L at or above this against its parent adds nothing new; dropped."""
    min_answer_words: int = Field(default=3, ge=0)
    """Answers shorter than this are failed evolutions."""


class DocQaSection(Section):
    documents: list[str] = Field(default_factory=list)
    """Plain-text or Markdown files, folders or glob patterns."""
    chunk_chars: int = Field(default=2000, ge=200)
    """Largest chunk, in characters, cut at headings and paragraphs."""
    overlap_chars: int = Field(default=200, ge=0)
    """Characters of the previous chunk repeated at the start of the next (context across cuts)."""
    pairs_per_chunk: int = Field(default=3, ge=1)
    """Question/answer pairs asked for per chunk."""
    persona: str = "a domain expert writing study questions"
    """Who the teacher plays when writing questions."""
    judge: Literal["similarity", "teacher", "none"] = "similarity"
    """How the closed-book answer is compared with the document's: string similarity, a yes/no teacher verdict, or not at all."""
    similarity: Literal["token_f1", "rouge_l"] = "token_f1"
    """String similarity used by ``judge: similarity``."""
    threshold: float = Field(default=0.5, ge=0, le=1)
    """Keep a pair when the similarity is at least this."""


class SynthSection(Section):
    pipeline: Literal["self_instruct", "evol_instruct", "doc_qa"] = "self_instruct"
    """Which generator runs."""
    output_dir: str | None = None
    """Folder for records, rejects, summary and the request cache; default ``<output_dir>/synth``."""
    format: str = "sftlab"
    """Output record format (any format the data writers support; ``sftlab`` is canonical JSONL)."""
    prompts: dict[str, str] = Field(default_factory=dict)
    """Template overrides: template id (e.g. ``self_instruct_generate``) → path of a text file."""
    teacher: TeacherSection = Field(default_factory=TeacherSection)
    self_instruct: SelfInstructSection = Field(default_factory=SelfInstructSection)
    evol_instruct: EvolInstructSection = Field(default_factory=EvolInstructSection)
    doc_qa: DocQaSection = Field(default_factory=DocQaSection)
