// Splits texts with GPT-2's pre-tokenizer regex run by JavaScript's own regex engine, as an
// independent check of Tessera's hand-written splitter (bpe_tokenizer_test.cpp). Reads one text
// a line as hex UTF-8 from the file given, prints the byte length of each piece, a line each.
// \s is spelled \p{White_Space}, as Python's regex module (GPT-2's) reads it; JavaScript's own \s
// would add U+FEFF and drop U+0085.
"use strict";
const fs = require("fs");
const ws = "\\p{White_Space}";
const gpt2 = new RegExp(
    `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${ws}\\p{L}\\p{N}]+|[${ws}]+(?![^${ws}])|[${ws}]+`, "gu");
const encoder = new TextEncoder();
const lines = fs.readFileSync(process.argv[2], "utf8").split("\n").filter((line) => line.length > 0);
const out = lines.map((hex) => {
  const text = Buffer.from(hex, "hex").toString("utf8");
  return Array.from(text.matchAll(gpt2), (m) => encoder.encode(m[0]).length).join(" ");
});
process.stdout.write(out.join("\n") + "\n");
