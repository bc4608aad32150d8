// Writes tests/bpe/gpt3_encoder_cases.json: token ids from npm gpt-3-encoder's own encode(), the
// JavaScript port of OpenAI's GPT-2 encoder, for varied strings; tests/bpe_tokenizer_test.cpp
// checks Tessera's tokenizer against them. Run after scripts/setup.sh:
//   node tests/bpe/make_gpt3_encoder_cases.js
// Texts are stored as the UTF-8 bytes gpt-3-encoder encodes (TextEncoder turns a lone surrogate
// into U+FFFD), in hex, so that every case survives JSON exactly.
// Not used here: U+0085 and U+FEFF, where JavaScript's \s disagrees with the Unicode White_Space
// that GPT-2's Python regex (and Tessera) use; bpe_tokenizer_test.cpp covers those separately.
"use strict";
const fs = require("fs");
const path = require("path");
const packageDir = path.join(__dirname, "../../third_party/npm/node_modules/gpt-3-encoder");
const { encode, decode } = require(packageDir);
const packageVersion = require(path.join(packageDir, "package.json")).version;

const cases = [
  // English and contractions
  ["hello world", "Hello world"],
  ["leading space", " Hello world"],
  ["sentence", "The quick brown fox jumps over the lazy dog."],
  ["contractions", "I'm sure they're here, we've seen it; you'll see, he'd say it's true and don't ask."],
  ["uppercase contractions are not split off", "I'M SURE THEY'RE HERE, IT'S TRUE"],
  ["apostrophes", "''''s 'tis rock 'n' roll ''"],
  ["quotes", "\"Quoted\" and 'single' and `back` and \u201Ccurly\u201D \u2018ones\u2019"],
  ["paragraph", "It was the best of times, it was the worst of times, it was the age of wisdom, it was " +
                "the age of foolishness, it was the epoch of belief, it was the epoch of incredulity."],
  ["repeated letters", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],
  ["long word", "Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism"],
  ["mixed case", "camelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case"],
  // punctuation
  ["punctuation", "Hello, world! How are you? Fine... (really) [yes] {no} <maybe>"],
  ["punctuation runs", "?!?!?! ... --- === *** ### @@@ ,,,, ;;;; :::: ////"],
  ["code", "int main(int argc, char** argv) {\n  return argc > 1 ? 0 : -1;\n}\n"],
  ["python", "def f(x):\n    if x:\n        return [i ** 2 for i in range(x)]\n"],
  ["url and email", "See https://example.com/path?q=1&r=two#frag or mail me@example.org."],
  ["json", "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}"],
  ["markup", "<p class=\"x\">Text &amp; more</p> **bold** _it_ # Heading"],
  // digits
  ["digits", "12345678901234567890"],
  ["numbers in text", "In 2024, 3.14159 and 1,000,000 and -42 and 0x1F and 1e-9."],
  ["date and time", "2024-01-31T23:59:59Z 12:30 pm"],
  ["letters and digits", "x2y3 abc123def 4you GPT2 R2D2"],
  // whitespace
  ["two spaces", "a  b"],
  ["three spaces", "a   b"],
  ["tab", "a\tb"],
  ["mixed space run", "a \t b \t\t c"],
  ["leading spaces", "   leading"],
  ["trailing spaces", "trailing   "],
  ["only spaces", "     "],
  ["single space", " "],
  ["empty", ""],
  ["newlines", "\n\n\n"],
  ["lines", "line one\nline two\r\nline three\n\nline five"],
  ["indented lines", "  \n  \n    x\n\t\ty"],
  ["space before newline", "end of line \nnext"],
  ["no-break space", "a\u00A0b \u00A0 c\u00A0\u00A0"],
  ["unicode spaces", "x\u2003y\u3000z\u2028w\u2029v\u1680u\u202Ft\u205Fs"],
  ["vertical tab and form feed", "a\u000Bb\u000Cc\r"],
  // accented and non-Latin letters
  ["accented", "Caf\u00E9 na\u00EFve fa\u00E7ade cr\u00E8me br\u00FBl\u00E9e"],
  ["german", "\u00C4pfel \u00D6l \u00DCbermut Stra\u00DFe"],
  ["combining marks", "Cafe\u0301 n\u0303 a\u0308\u0304"],
  ["greek", "\u0395\u03BB\u03BB\u03B7\u03BD\u03B9\u03BA\u03AC \u03BA\u03B5\u03AF\u03BC\u03B5\u03BD\u03BF"],
  ["cyrillic", "\u0420\u0443\u0441\u0441\u043A\u0438\u0439 \u0442\u0435\u043A\u0441\u0442"],
  ["hebrew and arabic", "\u05E2\u05D1\u05E8\u05D9\u05EA \u0627\u0644\u0639\u0631\u0628\u064A\u0629"],
  ["devanagari", "\u0939\u093F\u0928\u094D\u0926\u0940 \u092D\u093E\u0937\u093E"],
  ["thai", "\u0E20\u0E32\u0E29\u0E32\u0E44\u0E17\u0E22"],
  // CJK
  ["chinese", "\u4E2D\u6587\u6D4B\u8BD5\uFF0C\u4F60\u597D\u4E16\u754C\u3002"],
  ["japanese", "\u65E5\u672C\u8A9E\u306E\u30C6\u30AD\u30B9\u30C8\u3068\u30AB\u30BF\u30AB\u30CA"],
  ["korean", "\uD55C\uAD6D\uC5B4 \uD14D\uC2A4\uD2B8"],
  ["mixed scripts", "GPT-2\u662F\u4E00\u4E2A\u6A21\u578B (model) \u0645\u0648\u062F\u064A\u0644"],
  ["fullwidth", "\uFF11\uFF12\uFF13\uFF21\uFF22\uFF23\uFF01"],
  // emoji
  ["emoji", "\u{1F600} \u{1F44D}\u{1F3FD} \u2728\u2728"],
  ["emoji sequences", "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466} \u{1F1EF}\u{1F1F5} I \u2764\uFE0F NY"],
  ["emoji in words", "good\u{1F44D}job\u{1F389}\u{1F389}!"],
  // other letter and number classes
  ["other numbers", "\u0663\u0664\u0665 \u216B \u00BD \u00BE \u00B2\u00B3 \u2460\u2461"],
  ["math letters", "\u{1D518}\u{1D52B}\u{1D526}\u{1D520}\u{1D52C}\u{1D521}\u{1D522} \u{1D7D9}\u{1D7DA}"],
  ["titlecase and modifier letters", "\u01C5ungla \u02B0ello \u02BBokina"],
  // control characters and odd code points
  ["nul", "a\u0000b"],
  ["controls", "\u0001\u0002\u001B[0m\u007F"],
  ["c1 controls", "x\u0080\u0090\u009Fy"],
  ["zero width", "zero\u200Bwidth\u200Djoin\u2060"],
  ["replacement character", "bad \uFFFD byte"],
  ["lone surrogates", "a\uD800b \uDC00 \uD83D"],
  ["private use and noncharacters", "\uE000\uF8FF \uFFFE\uFFFF \u{10FFFF}"],
  ["special token as text", "<|endoftext|>"],
  ["special token in text", "end.<|endoftext|>Start"],
];

const result = {
  generator: "tests/bpe/make_gpt3_encoder_cases.js",
  reference: `npm gpt-3-encoder ${packageVersion} encode(), Node.js ${process.version}`,
  cases: cases.map(([name, text]) => {
    const bytes = Buffer.from(new TextEncoder().encode(text));
    const ids = encode(text);
    if (ids.some((id) => typeof id !== "number")) throw new Error(`${name}: gpt-3-encoder gave a non-number id`);
    return { name, utf8_hex: bytes.toString("hex"), ids };
  }),
};
const target = path.join(__dirname, "gpt3_encoder_cases.json");
// One case a line, so that a change in the reference shows as a readable diff.
const caseLines = result.cases.map((c) => "  " + JSON.stringify(c));
fs.writeFileSync(target, `{\n "generator": ${JSON.stringify(result.generator)},\n` +
                         ` "reference": ${JSON.stringify(result.reference)},\n "cases": [\n${caseLines.join(",\n")}\n ]\n}\n`);
console.log(`${target}: ${cases.length} cases`);
