"""Invariance checks: named perturbations of a case's inputs, and whether an answer held under them.

A contract declares ``invariant=[...]`` (perturbations of every string field of a case) or ``invariant={field:
[...]}`` (of named fields), and optionally ``invariant_fields=[...]``: the JSON fields that must not change
(else the whole normalised text). Each perturbation is a pure function of a string and a seeded
``random.Random``; the seed is the case id and the perturbation's label, so every process, every model and
every re-run asks the same perturbed inputs. docs/metrics.md ("Invariance") describes the rate.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..drift import structured, text
from ..types import Response

#: A perturbation: the text and a seeded generator in, the rewritten text out (pure, deterministic).
Perturbation = Callable[[str, random.Random], str]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def reorder_sentences(value: str, rng: random.Random) -> str:
    """The sentences in another order (a text of one sentence is left as it is)."""
    sentences = _SENTENCE_END.split(value.strip())
    if len(sentences) < 2:
        return value
    order = list(range(len(sentences)))
    rng.shuffle(order)
    if order == sorted(order):  # a shuffle may give the same order back: rotate, so the input really moves
        order = order[1:] + order[:1]
    return " ".join(sentences[i] for i in order)


def whitespace(value: str, rng: random.Random) -> str:
    """Extra spaces between some words, a leading space and a trailing newline: what a copy-paste adds."""
    words = value.split(" ")
    spaced = words[0] + "".join(rng.choice((" ", " ", "  ", "   ")) + w for w in words[1:])
    return " " + spaced + "\n"


def case(value: str, rng: random.Random) -> str:
    """The text in lower case or upper case (whichever the generator picks that changes it)."""
    first, second = (str.lower, str.upper) if rng.random() < 0.5 else (str.upper, str.lower)
    return first(value) if first(value) != value else second(value)


#: The registry of named perturbations ``invariant=[...]`` may use.
PERTURBATIONS: dict[str, Perturbation] = {
    "reorder_sentences": reorder_sentences,
    "whitespace": whitespace,
    "case": case,
}


class InvarianceError(ValueError):
    """An invariance declaration that cannot be used: reported as one line at collection."""


@dataclass(frozen=True)
class Invariance:
    """A contract's invariance declaration.

    ``perturbations`` pairs a case field (None: every string field but ``id``) with a perturbation name;
    ``outputs`` names the JSON fields that must not change (empty: the whole normalised text).
    """

    perturbations: tuple[tuple[str | None, str], ...]
    outputs: tuple[str, ...] = ()

    @classmethod
    def declare(cls, invariant: Sequence[str] | Mapping[str, Sequence[str]] | None,
                invariant_fields: Sequence[str] | str | None, *, json_output: bool) -> Invariance | None:
        """The declaration of ``llm_contract(invariant=..., invariant_fields=...)``; raises InvarianceError."""
        if invariant is None:
            if invariant_fields is not None:
                raise InvarianceError("llm_contract(invariant_fields=...) needs invariant=[...]: the perturbations "
                                      "under which those fields must not change")
            return None
        if isinstance(invariant, Mapping):
            pairs = [(f, name) for f, names in invariant.items() for name in _names(names, f)]
            bad = [f for f in invariant if not isinstance(f, str) or f == "id"]
            if bad:
                raise InvarianceError(f"llm_contract(invariant={{{bad[0]!r}: ...}}): keys are the case fields to "
                                      "perturb (strings, not 'id')")
        else:
            pairs = [(None, name) for name in _names(invariant, None)]
        if not pairs:
            raise InvarianceError("llm_contract(invariant=...) names no perturbation; known: "
                                  + ", ".join(sorted(PERTURBATIONS)))
        outputs = (invariant_fields,) if isinstance(invariant_fields, str) else tuple(invariant_fields or ())
        if outputs and not json_output:
            raise InvarianceError("llm_contract(invariant_fields=...) names JSON fields: it needs output='json' "
                                  "(leave it out to require the whole text unchanged)")
        if not all(isinstance(o, str) and o for o in outputs):
            raise InvarianceError(f"llm_contract(invariant_fields={invariant_fields!r}): give JSON field names "
                                  "(dotted paths such as 'customer.id')")
        return cls(tuple(pairs), outputs)

    def variants(self, case_id: str, variables: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """``(label, perturbed variables)`` for each declared perturbation of one case."""
        out = []
        for field_name, name in self.perturbations:
            label = name if field_name is None else f"{name}({field_name})"
            if field_name is None:
                targets = [k for k, v in variables.items() if isinstance(v, str) and k != "id"]
            elif isinstance(variables.get(field_name), str):
                targets = [field_name]
            else:
                raise InvarianceError(f"case {case_id!r}: invariant field {field_name!r} is not a string field of "
                                      f"the case (case keys: {', '.join(sorted(variables)) or 'none'})")
            rng = random.Random(f"{case_id}/{label}")
            out.append((label, {**variables, **{k: PERTURBATIONS[name](variables[k], rng) for k in targets}}))
        return out

    def held(self, base: str, perturbed: str) -> bool:
        """Whether the checked output of ``perturbed`` equals that of ``base``: the named JSON fields (an answer
        that is not JSON has none), else the whole text after normalisation."""
        if not self.outputs:
            return text.exact(base, perturbed) == 1.0
        a, b = structured.parse_json(base), structured.parse_json(perturbed)
        if a is structured.MISSING or b is structured.MISSING:
            return False
        return all(structured.get_path(a, p) == structured.get_path(b, p) for p in self.outputs)


def _names(names: Any, field_name: str | None) -> list[str]:
    where = "invariant" if field_name is None else f"invariant[{field_name!r}]"
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise InvarianceError(f"llm_contract({where}={names!r}): give a list of perturbation names, e.g. "
                              "['reorder_sentences', 'whitespace']")
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown:
        raise InvarianceError(f"llm_contract({where}=...): unknown perturbation {unknown[0]!r}; known: "
                              + ", ".join(sorted(PERTURBATIONS)))
    return list(names)


def outcome(label: str, base: str, answer: Response | BaseException | None, invariance: Invariance) -> dict[str, Any]:
    """One perturbed input's outcome as a case result keeps it: the label, whether the checked output held and
    the answer, or the error (a failed call holds nothing: the share's denominator never shrinks)."""
    if not isinstance(answer, Response):
        return {"perturbation": label, "held": False, "error": str(answer or "no answer")}
    return {"perturbation": label, "held": invariance.held(base, answer.text), "text": answer.text}


def tally(outcomes: Iterable[Sequence[dict[str, Any]]]) -> tuple[int, int]:
    """``(held, perturbed inputs)`` over the outcomes of many cases."""
    rows = [o for case_outcomes in outcomes for o in case_outcomes]
    return sum(bool(o["held"]) for o in rows), len(rows)


def beyond_tolerance(outcomes: Sequence[dict[str, Any]], limit: float | None) -> str | None:
    """The tolerance line of a case whose share of held perturbations is under ``limit`` (None when within, or
    when no perturbation changed the case's prompt)."""
    held, n = tally([outcomes])
    if limit is None or not n or held / n >= limit:
        return None
    changed = ", ".join(o["perturbation"] for o in outcomes if not o["held"])
    return f"invariance {held}/{n} < {limit}: the answer changed under {changed}"



def unrecorded(variants: Iterable[tuple[str, str]], recorded: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Labels of the ``(label, prompt hash)`` perturbed inputs a golden has no answer for (or one for another
    input: the template, the case or the perturbation changed since it was recorded)."""
    return [label for label, digest in variants if recorded.get(label, {}).get("prompt_hash") != digest]
