// SPDX-License-Identifier: GPL-2.0
//
// Random test strings for a longer differential run of the tokenizer against
// the references than strings.json gives:
//
//   node tests/tokenizer/random-strings.mjs COUNT SEED > /tmp/r.json
//   node tests/tokenizer/reference.mjs /tmp/rdata /tmp/r.json
//   LLMQ_TOKENIZER_DATA=/tmp/rdata build/tests/test_tokenizer
//
// Two thirds are mixes of text fragments (scripts, digits, whitespace,
// contractions, combining marks, emoji, special-token text), one third raw
// bytes mixed with fragments cut anywhere (invalid UTF-8, given as hex).

const count = Number(process.argv[2] ?? 1000);
let seed = Number(process.argv[3] ?? 1) >>> 0;
function rnd() {	/* xorshift32 */
	seed ^= seed << 13;
	seed >>>= 0;
	seed ^= seed >>> 17;
	seed ^= seed << 5;
	seed >>>= 0;
	return seed / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];

const pool = [
	'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789', ' ', '  ', '    ',
	'\t', '\n', '\r\n', '\r', '\n\n\n', '  \n  ', '.,;:!?\'"()[]{}<>-_=+*/\\|@#$%^&~`', '...', '---',
	"'s", "'t", "'re", "'ll", "'d", "'m", "'ve", "'S", "'LL", 'the', ' the', 'The', 'ing', 'tion',
	'éèêëàâäôöûüçñßøåæœ', 'e\u0301', 'a\u0308', '\u0301', '\u0327', '\u212B\u2126', 'ﬁﬂ', '½²³①',
	'中文字符測試日本語ひらがなカタカナ한국어', '😀🦙👍🏽❤️‍🔥🇯🇵', '\u{1F9D1}\u200D\u{1F4BB}',
	'Привет мир', 'مرحبا', 'שלום', 'नमस्ते', 'ไทย', '\u00A0', '\u3000', '\u2009', '\u200B', '\u2028',
	'\u0085', '\uFEFF', '<|eot_id|>', '<|im_end|>', '<think>', '<|begin_of_text|>', '<s>', '</s>',
	'▁', 'Ġ', '1234567',
];

const out = [];
for (let i = 0; i < count; i++) {
	if (rnd() < 2 / 3) {
		let s = '';
		for (let k = 1 + Math.floor(rnd() * 24); k > 0; k--) {
			const p = Array.from(pick(pool));
			const a = rnd() < 0.5 ? Math.floor(rnd() * p.length) : 0;
			s += p.slice(a, a + 1 + Math.floor(rnd() * p.length)).join('');
		}
		out.push(s);
	} else {
		const parts = [];
		for (let k = 1 + Math.floor(rnd() * 16); k > 0; k--) {
			if (rnd() < 0.3) {
				const b = Buffer.alloc(1 + Math.floor(rnd() * 3));
				for (let q = 0; q < b.length; q++)
					b[q] = Math.floor(rnd() * 256);
				parts.push(b);
			} else {
				const f = Buffer.from(pick(pool));
				parts.push(f.subarray(0, 1 + Math.floor(rnd() * f.length)));
			}
		}
		out.push({ hex: Buffer.concat(parts).toString('hex') });
	}
}
process.stdout.write('[\n' + out.map((s) => JSON.stringify(s)).join(',\n') + '\n]\n');
