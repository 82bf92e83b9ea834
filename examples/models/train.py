"""Train the example models: a tiny Llama-style teacher for support-ticket triage and a distilled student.

The task: read a support ticket, answer with JSON ``{"category": ..., "priority": ..., "reference": ...}``.
*Ordinary* tickets name one category; *ambiguous* ones name two (their training label is either, at random), so
the teacher is unsure on them, which is where quantized and distilled cousins drift.

The prompt the models are trained on is exactly what the example contract sends: ``examples/prompts/triage.j2``
rendered with the case's ``ticket``, wrapped by the tokenizer's chat template as one user message.

Run from the repository root (about 5 minutes on one CPU core; deterministic for a given torch build and
thread count)::

    HF_HUB_OFFLINE=1 python examples/models/train.py

It writes ``examples/models/teacher``, ``examples/models/student`` and ``examples/data/tickets.jsonl`` and prints
accuracy and agreement figures.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import jinja2
import torch
import torch.nn.functional as F
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent
SEED = 1234
CATEGORIES = ("billing", "bug", "account", "other")

# Words with their leading space, digit runs, and every other character as its own token: with the Fuse
# decoder the text round-trips exactly. Reference numbers are whole tokens from a small fixed pool: a model this
# small does not learn general copying (digit by digit, or of 200 numbers) within minutes of CPU training.
SPLIT_PATTERN = r" ?[^\W\d]+|\d+|[^\w]"
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

PHRASES = {
    "billing": [
        "I was charged twice for my subscription.", "My invoice shows the wrong amount.",
        "Please refund my last payment.", "The card payment failed at checkout.",
        "Why did my monthly price go up?", "I need a copy of my receipt for the tax office.",
        "You billed us for ten seats but we only use four.", "The discount code was not applied to my bill.",
    ],
    "bug": [
        "The app crashes when I open the dashboard.", "The export button shows an error.",
        "The page does not load after the update.", "Search returns nothing even for exact names.",
        "The mobile app freezes on the settings screen.", "Uploading a file gives a blank screen.",
        "Notifications arrive twice since yesterday.", "The chart shows wrong dates in the report.",
    ],
    "account": [
        "I cannot log in to my account.", "Please reset my password.",
        "I want to change the email on my profile.", "My account was locked after three attempts.",
        "How do I add a new user to our team?", "Please delete my account and my data.",
        "The two factor code never arrives on my phone.", "I need to transfer the account to a colleague.",
    ],
    "other": [
        "Do you have a discount for schools?", "I would like to suggest a new feature.",
        "Where can I find your privacy policy?", "Can we book a demo for our sales team?",
        "Is there a plan for small charities?", "Do you offer training for new staff?",
        "I love the new design, great work.", "Are you hiring support engineers?",
    ],
}
PRIORITY = {
    "high": ["This is urgent.", "Our whole team is blocked.", "Please fix this today, we are losing customers.",
             "We need an answer immediately."],
    "low": ["No rush.", "Whenever you have time.", "This is not important.", "Low priority, just so you know."],
    "medium": ["Please take a look.", "Could you check this this week?", "Thanks in advance.", ""],
}
REFERENCE = {
    "INV": ["The invoice number is {ref}.", "See invoice {ref}.", "It is about invoice {ref}."],
    "ORD": ["My order number is {ref}.", "This concerns order {ref}.", "Order {ref} is affected."],
}
REFERENCE_NUMBERS = sorted(random.Random(7).sample(range(10000, 100000), 12))
GREETINGS = ["Hi team,", "Hello,", "Dear support,", "Hi,", ""]
SIGN_OFFS = ["Thanks, Maria", "Best regards, Tom", "Cheers, Lee", "Regards, Ana", "Thank you", ""]


def make_ticket(rng: random.Random, ambiguous: bool) -> dict:
    """One synthetic ticket with its label; ambiguous tickets list both categories as acceptable."""
    cats = rng.sample(CATEGORIES, 2) if ambiguous else [rng.choice(CATEGORIES)]
    priority = rng.choice(("low", "medium", "high"))
    sentences = [rng.choice(PHRASES[c]) for c in cats]
    if PRIORITY[priority]:
        sentences.append(rng.choice(PRIORITY[priority]))
    reference = None
    if rng.random() < 0.5:
        kind = rng.choice(("INV", "ORD"))
        reference = f"{kind}-{rng.choice(REFERENCE_NUMBERS)}"
        sentences.append(rng.choice(REFERENCE[kind]).format(ref=reference))
    rng.shuffle(sentences)
    parts = [rng.choice(GREETINGS), *sentences, rng.choice(SIGN_OFFS)]
    ticket = " ".join(p for p in parts if p)
    label = {"category": rng.choice(cats), "priority": priority, "reference": reference}
    return {"ticket": ticket, "categories": cats, "priority": priority, "reference": reference, "label": label}


def answer_text(label: dict) -> str:
    return json.dumps(label)


def render_prompt(template: jinja2.Template, ticket: str) -> list[dict]:
    return [{"role": "user", "content": template.render(ticket=ticket)}]


def build_tokenizer(corpus: list[str]) -> PreTrainedTokenizerFast:
    """A WordLevel tokenizer over every piece the generator and the prompt can produce."""
    split = pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated")
    pieces: set[str] = {str(n) for n in REFERENCE_NUMBERS}
    for text in corpus:
        pieces.update(p for p, _ in split.pre_tokenize_str(text))
    vocab = {tok: i for i, tok in enumerate(SPECIAL)}
    for piece in sorted(pieces):
        vocab.setdefault(piece, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = split
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        extra_special_tokens=SPECIAL[4:], clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def encode(tok: PreTrainedTokenizerFast, messages: list[dict], answer: str | None = None) -> tuple[list[int], int]:
    """Token ids of the chat prompt (plus answer and EOS when given) and the length of the prompt part."""
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    n_prompt = len(ids)
    if answer is not None:
        ids = ids + tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return ids, n_prompt


def collate(batch: list[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded inputs, attention mask and labels that score the answer tokens only (rows are
    ``(ids, prompt length)``)."""
    width = max(len(ids) for ids, _ in batch)
    inputs = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, n_prompt) in enumerate(batch):
        inputs[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        labels[row, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
    return inputs, mask, labels


def lr_at(step: int, total: int, peak: float) -> float:
    warmup = max(1, total // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@torch.no_grad()
def generate(model: LlamaForCausalLM, tok: PreTrainedTokenizerFast, messages: list[list[dict]],
             batch_size: int = 128) -> list[str]:
    """Greedy answers, batched with left padding."""
    tok.padding_side = "left"
    outs: list[str] = []
    for start in range(0, len(messages), batch_size):
        chunk = messages[start : start + batch_size]
        prompts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in chunk]
        enc = tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
        gen = model.generate(**enc, max_new_tokens=48, do_sample=False)
        outs.extend(tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    return outs


def score(answers: list[str], tickets: list[dict]) -> float:
    """Share of answers that parse and match the label (any listed category for ambiguous tickets)."""
    ok = 0
    for text, t in zip(answers, tickets):
        try:
            got = json.loads(text)
        except json.JSONDecodeError:
            continue
        ok += (got.get("category") in t["categories"] and got.get("priority") == t["priority"]
               and got.get("reference") == t["reference"])
    return ok / len(tickets)


def agreement(a: list[str], b: list[str]) -> float:
    return sum(x == y for x, y in zip(a, b)) / len(a)


def tiny_llama(tok, hidden: int, intermediate: int, layers: int) -> LlamaForCausalLM:
    """A Llama-style model with tied embeddings: its layers are nn.Linear, which the quantizers handle."""
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    ))


def fit(model: LlamaForCausalLM, data, steps: int, lr: float, seed: int, loss_fn, name: str, log) -> LlamaForCausalLM:
    """AdamW with the warm-up/cosine schedule on batches of 32 rows of ``data``; ``loss_fn(model, rows)``
    returns ``(loss, message)``, the message logged every 100 steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    rng = random.Random(seed)
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        loss, message = loss_fn(model, rng.sample(data, 32))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"  {name} step {step:4d} {message()}")
    return model.eval()


def train_teacher(tok, data, steps: int, log) -> LlamaForCausalLM:
    torch.manual_seed(SEED)
    model = tiny_llama(tok, hidden=64, intermediate=128, layers=2)
    log(f"teacher: {sum(p.numel() for p in model.parameters()):,} parameters, vocab {len(tok)}")

    def loss_fn(model, rows):
        inputs, mask, labels = collate(rows, model.config.pad_token_id)
        loss = model(input_ids=inputs, attention_mask=mask, labels=labels).loss
        return loss, lambda: f"loss {loss.item():.4f}"

    return fit(model, data, steps, 3e-3, SEED, loss_fn, "teacher", log)


def distil_student(tok, teacher, data, steps: int, log) -> LlamaForCausalLM:
    """CE on the teacher's greedy answers plus KL to the teacher's distribution at the answer positions.

    ``data`` rows are ``(student input, teacher input)``, each ``(ids, prompt length)``: the two prompts are
    the same tokens in another order, so the answer positions line up and the teacher is read on its own prompt.
    """
    torch.manual_seed(SEED + 1)
    model = tiny_llama(tok, hidden=48, intermediate=96, layers=1)
    log(f"student: {sum(p.numel() for p in model.parameters()):,} parameters")

    def loss_fn(model, rows):
        inputs, mask, labels = collate([s for s, _ in rows], model.config.pad_token_id)
        t_inputs, t_mask, _ = collate([t for _, t in rows], model.config.pad_token_id)
        out = model(input_ids=inputs, attention_mask=mask, labels=labels)
        with torch.no_grad():
            t_logits = teacher(input_ids=t_inputs, attention_mask=t_mask).logits
        # Position i predicts token i+1: the answer positions are those whose next-token label is set.
        scored = labels[:, 1:] != -100
        s_logp = F.log_softmax(out.logits[:, :-1][scored], dim=-1)
        t_logp = F.log_softmax(t_logits[:, :-1][scored], dim=-1)
        kl = F.kl_div(s_logp, t_logp, log_target=True, reduction="batchmean")
        return out.loss + kl, lambda: f"ce {out.loss.item():.4f} kl {kl.item():.4f}"

    return fit(model, data, steps, 4e-3, SEED + 1, loss_fn, "student", log)


def save(model: LlamaForCausalLM, tok: PreTrainedTokenizerFast, folder: Path) -> None:
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        do_sample=False, max_new_tokens=64,
    )
    model.save_pretrained(folder, safe_serialization=True)
    tok.padding_side = "left"
    tok.save_pretrained(folder)


def variant_changes(folder: Path, tok, messages: list[list[dict]], reference: list[str]) -> dict[str, float]:
    """Share of answers that change when the saved teacher is loaded in bf16/fp16 or quantized to int8."""
    from transformers import TorchAoConfig
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig

    variants = {
        "bfloat16": {"dtype": torch.bfloat16},
        "float16": {"dtype": torch.float16},
        "int8": {"dtype": torch.float32, "quantization_config": TorchAoConfig(Int8WeightOnlyConfig())},
        "int8-dynamic": {"dtype": torch.float32,
                         "quantization_config": TorchAoConfig(Int8DynamicActivationInt8WeightConfig())},
    }
    changes = {}
    for name, kwargs in variants.items():
        model = LlamaForCausalLM.from_pretrained(folder, local_files_only=True, **kwargs).eval()
        changes[name] = 1 - agreement(generate(model, tok, messages), reference)
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher-steps", type=int, default=4000)
    parser.add_argument("--student-steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--own-share", type=float, default=0.95,
                        help="share of the student's distillation tickets asked in its own prompt format")
    parser.add_argument("--student-only", action="store_true",
                        help="distil the student from the teacher saved in --out instead of training both")
    parser.add_argument("--no-variants", action="store_true", help="skip the bf16/fp16/int8 comparison")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; one is nearly as fast for a model this small and shares the machine")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    template = env.from_string((EXAMPLES / "prompts" / "triage.j2").read_text())
    own = env.from_string((EXAMPLES / "prompts" / "triage.student.j2").read_text())

    rng = random.Random(SEED)
    train = [make_ticket(rng, ambiguous=rng.random() < 0.2) for _ in range(6000)]
    seen = {t["ticket"] for t in train}
    held_rng = random.Random(SEED + 100)
    held_ordinary, held_ambiguous = [], []
    while len(held_ordinary) < 300 or len(held_ambiguous) < 300:
        amb = held_rng.random() < 0.5
        t = make_ticket(held_rng, ambiguous=amb)
        bucket = held_ambiguous if amb else held_ordinary
        if t["ticket"] not in seen and len(bucket) < 300:
            seen.add(t["ticket"])
            bucket.append(t)

    corpus = [template.render(ticket=t["ticket"]) + answer_text(t["label"]) for t in train + held_ordinary
              + held_ambiguous]
    corpus += [" ".join(p for group in PHRASES.values() for p in group), "null"]
    tok = (PreTrainedTokenizerFast.from_pretrained(args.out / "teacher") if args.student_only
           else build_tokenizer(corpus))
    chat_probe = tok.apply_chat_template(render_prompt(template, train[0]["ticket"]), add_generation_prompt=True,
                                         tokenize=False)
    own_probe = tok.apply_chat_template(render_prompt(own, train[0]["ticket"]), add_generation_prompt=True,
                                        tokenize=False)
    for text in [chat_probe, own_probe, *corpus[:200]]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids, text
        assert tok.decode(ids, skip_special_tokens=False) == text, f"tokenizer does not round-trip: {text!r}"

    data = [encode(tok, render_prompt(template, t["ticket"]), answer_text(t["label"])) for t in train]
    log(f"{len(data)} training tickets, longest {max(len(d[0]) for d in data)} tokens")

    if args.student_only:
        teacher = LlamaForCausalLM.from_pretrained(args.out / "teacher", local_files_only=True).eval()
        log(f"teacher loaded from {args.out / 'teacher'}")
    else:
        teacher = train_teacher(tok, data, args.teacher_steps, log)
    ord_msgs = [render_prompt(template, t["ticket"]) for t in held_ordinary]
    amb_msgs = [render_prompt(template, t["ticket"]) for t in held_ambiguous]
    t_ord, t_amb = generate(teacher, tok, ord_msgs), generate(teacher, tok, amb_msgs)
    log(f"teacher held-out accuracy: ordinary {score(t_ord, held_ordinary):.1%}, "
        f"ambiguous (either category) {score(t_amb, held_ambiguous):.1%}")

    # The student learns from the teacher's own greedy answers on fresh tickets, not from the labels, and mostly
    # in its own prompt format (the ticket first): asked in the teacher's format it is less sure, as a distilled
    # model tuned to its own prompt is. The example contract measures what its adapted prompt wins back.
    distil_rng = random.Random(SEED + 200)
    distil_tickets = [make_ticket(distil_rng, ambiguous=distil_rng.random() < 0.3) for _ in range(3000)]
    distil_msgs = [render_prompt(template, t["ticket"]) for t in distil_tickets]
    teacher_answers = generate(teacher, tok, distil_msgs)
    log("teacher answered the distillation tickets")
    own_rng = random.Random(SEED + 300)
    distil_data = [(encode(tok, render_prompt(own, t["ticket"]) if own_rng.random() < args.own_share else m, a),
                    encode(tok, m, a)) for t, m, a in zip(distil_tickets, distil_msgs, teacher_answers)]
    student = distil_student(tok, teacher, distil_data, args.student_steps, log)
    s_ord, s_amb = generate(student, tok, ord_msgs), generate(student, tok, amb_msgs)
    own_ord = generate(student, tok, [render_prompt(own, t["ticket"]) for t in held_ordinary])
    own_amb = generate(student, tok, [render_prompt(own, t["ticket"]) for t in held_ambiguous])

    args.out.mkdir(parents=True, exist_ok=True)
    if not args.student_only:
        save(teacher, tok, args.out / "teacher")
    save(student, tok, args.out / "student")

    cases = []
    for kind, pool in (("ordinary", held_ordinary[:45]), ("ambiguous", held_ambiguous[:15])):
        for t in pool:
            prefix = t["categories"][0] if kind == "ordinary" else "ambiguous"
            n = sum(c["id"].startswith(prefix + "-") for c in cases) + 1
            cases.append({"id": f"{prefix}-{n:03d}", "ticket": t["ticket"], "categories": t["categories"],
                          "priority": t["priority"], "reference": t["reference"]})
    with open(EXAMPLES / "data" / "tickets.jsonl", "w") as fh:
        fh.writelines(json.dumps(c) + "\n" for c in cases)

    figures = {
        "teacher_accuracy_ordinary": score(t_ord, held_ordinary),
        "teacher_accuracy_ambiguous": score(t_amb, held_ambiguous),
        "student_accuracy_ordinary": score(s_ord, held_ordinary),
        "student_agreement_ordinary": agreement(s_ord, t_ord),
        "student_agreement_ambiguous": agreement(s_amb, t_amb),
        "student_own_prompt_accuracy_ordinary": score(own_ord, held_ordinary),
        "student_own_prompt_agreement_ordinary": agreement(own_ord, t_ord),
        "student_own_prompt_agreement_ambiguous": agreement(own_amb, t_amb),
    }
    if not args.no_variants:
        for name, share in variant_changes(args.out / "teacher", tok, ord_msgs, t_ord).items():
            figures[f"{name}_changed_ordinary"] = share
        for name, share in variant_changes(args.out / "teacher", tok, amb_msgs, t_amb).items():
            figures[f"{name}_changed_ambiguous"] = share
    log(f"saved teacher and student to {args.out}, {len(cases)} cases to examples/data/tickets.jsonl")
    for key, value in figures.items():
        print(f"{key:36s} {value:7.1%}")


if __name__ == "__main__":
    main()
