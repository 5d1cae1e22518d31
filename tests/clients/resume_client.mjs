// The npm `eventsource` package (the EventSource of Node programs) reads a resumable stream through a proxy that
// cuts its connection twice mid-stream. It reconnects by itself with Last-Event-ID, and must end up with every
// event of the upstream exactly once, in order, then the `done` event; the reconnect after the end is answered
// 204, which closes it for good. Run by test_resume.py:
//
//     node resume_client.mjs URL COUNT
//
// Prints one JSON line with what it saw; exit status 0 when everything matched.
import { EventSource } from "eventsource";

const [url, countArg] = process.argv.slice(2);
const count = Number(countArg);
const seqs = [];
const ids = [];
const problems = [];
let opens = 0, errors = 0, done = false;

function finish(code) {
  clearTimeout(timer);
  es.close();
  console.log(JSON.stringify({ ok: code === 0, opens, errors, done, seqs, problems: problems.slice(0, 8) }));
  process.exit(code);
}

const timer = setTimeout(() => { problems.push("timed out after 40 s"); finish(1); }, 40_000);
const es = new EventSource(url);
es.onopen = () => { opens++; };
es.onmessage = (e) => {
  seqs.push(JSON.parse(e.data).seq);
  ids.push(e.lastEventId);
};
es.addEventListener("done", () => { done = true; });
es.onerror = () => {
  errors++;
  if (es.readyState !== EventSource.CLOSED) return; // a cut: it reconnects by itself
  // Closed for good: the reconnect after the end was answered 204 (or something failed).
  const want = Array.from({ length: count }, (_, i) => i + 1);
  if (JSON.stringify(seqs) !== JSON.stringify(want)) problems.push(`events ${JSON.stringify(seqs)}`);
  const stream = ids[0]?.split(".")[0];
  ids.forEach((id, i) => { if (id !== `${stream}.${i + 1}`) problems.push(`event ${i + 1} has id ${id}`); });
  if (!done) problems.push("no done event");
  if (opens !== 3) problems.push(`opened ${opens} times, expected 3 (the first, then one per cut)`);
  finish(problems.length ? 1 : 0);
};
