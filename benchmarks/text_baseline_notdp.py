"""NOT DIFFERENTIALLY PRIVATE. A benchmark-only reproduction of the SafeSynthDP paper's recipe.

The recipe puts raw private records into the prompt as in-context examples and adds noise to the
output (here: Laplace noise on the label histogram that splits the output, the only numeric output).
The noise protects the label shares; nothing protects the in-context examples, which the model may
copy or paraphrase. It exists so the benchmark and the audit can show what it leaks next to the
Private Evolution engine. It is deliberately outside the ``safesynth`` package: it is not an engine
and cannot be registered as one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from safesynth.gateway.engines.text.generate import CandidateGenerator, clean_generation, is_prompt_echo
from safesynth.gateway.engines.text.selection import allocate

__all__ = ["NOT_DP", "paper_baseline"]

NOT_DP = True  # read by the benchmark report: this method offers no DP guarantee


def _prompt(description: str, label_phrase: str, shots: Sequence[str]) -> str:
    """A few-shot list to continue: the private examples one per line, then an open item.

    A chat prompt ("Here are real entries ... Write one new entry") made the instruct model announce
    its answer ("Here's a new entry:") and stop at the blank line in about half of the outputs, so half
    of the requested texts were lost; a raw list continuation has no turn to announce anything in, and
    it is the classic in-context prompt of the recipe.
    """
    examples = "".join("- " + " ".join(s.split()) + "\n" for s in shots)
    return f"Data set: {description}.{label_phrase}\n{examples}- "


def paper_baseline(
    generator: CandidateGenerator,
    private_by_label: Mapping[str, Sequence[str]],
    *,
    rows: int,
    epsilon: float,
    description: str,
    label_descriptions: Mapping[str, str],
    shots: int = 3,
    seed: int = 0,
    label_mix: str = "dp_shares",
) -> tuple[list[str], list[str], dict[str, Any]]:
    """``rows`` texts written from in-context private examples; Laplace(1/epsilon) on label counts."""
    gen = np.random.default_rng(seed)
    labels = list(private_by_label)
    counts = np.array([len(private_by_label[lab]) for lab in labels], dtype=np.float64)
    noisy = counts + gen.laplace(0.0, 1.0 / epsilon, size=counts.shape[0])
    shares = np.clip(noisy, 0, None).tolist()
    if label_mix == "balanced":  # the same public choice as the engine's label_mix="balanced"
        shares = [1.0 if x > 0 else 0.0 for x in shares]
    per_label = allocate(rows, shares)
    texts: list[str] = []
    out_labels: list[str] = []
    dropped = 0
    for lab, n in zip(labels, per_label, strict=True):
        pool = list(private_by_label[lab])
        if n == 0 or not pool:
            continue
        phrase = f" Every entry below is {label_descriptions[lab]}." if lab in label_descriptions else ""
        prompts = []
        for _ in range(n):
            picks = gen.choice(len(pool), size=min(shots, len(pool)), replace=False)
            prompts.append(_prompt(description, phrase, [pool[int(i)] for i in picks]))
        results = generator.runner.generate_batch(
            prompts,
            max_tokens=generator.budget.max_tokens,
            temperature=generator.budget.temperature,
            top_p=generator.budget.top_p,
            seed=int(gen.integers(0, 2**31)),
            stop=["\n"],
        )
        for r in results:
            generator.stats.calls += 1
            generator.stats.completion_tokens += int(r.completion_tokens)
            generator.stats.prompt_tokens += int(r.prompt_tokens)
            generator.stats.seconds += float(r.seconds)
            text = clean_generation(r.text, generator.budget.max_chars).lstrip("- ")
            if text and not is_prompt_echo(text):
                texts.append(text)
                out_labels.append(lab)
            else:
                dropped += 1
    info = {"not_dp": True, "noisy_label_counts": noisy.tolist(), "shots": shots, "dropped": dropped}
    return texts, out_labels, info
