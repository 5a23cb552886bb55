"""A stand-in judge model: OpenAI's documented ``POST /v1/chat/completions``, over real HTTP.

It grades each (query, passage) pair from what the test knows (``truth``), flips a seeded
share of the grades at random (``noise``), answers some pairs with prose a strict parser
must refuse (``garbage``), and refuses its first ``fail_first`` requests with 503 +
``Retry-After: 0`` (the retry path). It counts what it was sent.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.servers import serve_in_thread

__all__ = ["StandInJudge", "running_judge"]

_USER = re.compile(r"Query: (?P<query>.*)\nPassage: (?P<passage>.*)\nScore:", re.DOTALL)


@dataclass
class StandInJudge:
    """Grades pairs from ``truth(query, passage)`` plus controlled noise."""

    truth: Callable[[str, str], int]
    noise: float = 0.0
    garbage: Callable[[str, str], bool] = lambda q, p: False
    fail_first: int = 0
    requests: int = 0
    models: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, query: str, passage: str) -> str:
        if self.garbage(query, passage):
            return "The passage seems somewhat relevant to the query."
        grade = self.truth(query, passage)
        seed = hashlib.sha256(f"{query}\0{passage}".encode()).digest()
        rng = random.Random(seed)
        if rng.random() < self.noise:
            grade = rng.randrange(4)
        return str(grade) if rng.random() < 0.5 else f'{{"grade": {grade}}}'

    async def chat(self, request: Request) -> JSONResponse:
        with self._lock:
            self.requests += 1
            refuse = self.requests <= self.fail_first
        if refuse:
            return JSONResponse(
                {"error": {"message": "overloaded", "type": "server_error", "code": 503}},
                status_code=503,
                headers={"Retry-After": "0"},
            )
        body = await request.json()
        messages = body.get("messages") if isinstance(body, dict) else None
        if (
            not isinstance(messages, list)
            or not messages
            or not all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in messages)
            or not isinstance(body.get("model"), str)
        ):
            return JSONResponse(
                {"error": {"message": "bad request", "type": "invalid_request_error", "code": 400}},
                status_code=400,
            )
        self.models.add(body["model"])
        match = _USER.fullmatch(messages[-1]["content"])
        if match is None:
            return JSONResponse(
                {"error": {"message": "no pair", "type": "invalid_request_error", "code": 400}},
                status_code=400,
            )
        content = self.answer(match["query"], match["passage"])
        prompt = sum(len(m["content"]) // 4 for m in messages)
        return JSONResponse(
            {
                "id": "chatcmpl-standin",
                "object": "chat.completion",
                "created": 1767225600,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": 3,
                    "total_tokens": prompt + 3,
                },
            }
        )


@contextmanager
def running_judge(judge: StandInJudge) -> Iterator[str]:
    """Serve ``judge`` on loopback; yields its OpenAI-style base URL (``.../v1``)."""
    app = Starlette(routes=[Route("/v1/chat/completions", judge.chat, methods=["POST"])])
    with serve_in_thread(app, lifespan="off") as url:
        yield f"{url}/v1"
