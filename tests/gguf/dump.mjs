// SPDX-License-Identifier: GPL-2.0
// Print what @huggingface/gguf (an independent parser) reads from a GGUF
// file, as JSON: metadata (arrays summarised by length and a checksum) and
// tensor infos.  The C tests compare it with llmq's own reader.
import { gguf } from "@huggingface/gguf";
import { createHash } from "node:crypto";

const file = process.argv[2];
const { metadata, tensorInfos } = await gguf(file, { allowLocalFile: true, computeParametersCount: false });
const meta = {};
for (const [k, v] of Object.entries(metadata)) {
	if (Array.isArray(v)) {
		const h = createHash("sha256");
		for (const e of v)
			h.update(String(e) + "\u0000");
		meta[k] = { n: v.length, sha256: h.digest("hex"), first: String(v[0]) };
	} else {
		meta[k] = typeof v === "bigint" ? v.toString() : v;
	}
}
const tensors = tensorInfos.map((t) => ({
	name: t.name,
	shape: t.shape.map((d) => d.toString()),
	dtype: t.dtype,
	offset: t.offset.toString(),
}));
process.stdout.write(JSON.stringify({ metadata: meta, tensors }) + "\n");
