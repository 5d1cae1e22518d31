// The npm `eventsource` package (the EventSource Node programs use) reads a stream through ssegate and must see
// every event of the upstream, in order: ids 1..N (also as lastEventId), data with the same seq, the multi-line
// event joined with "\n", UTF-8 intact, then the named `end` event. Run by test_eventsource.py:
//
//     node eventsource_client.mjs URL COUNT MULTILINE_ID
//
// Prints one JSON line with what it saw; exit status 0 when everything matched.
import { EventSource } from "eventsource";

const [url, countArg, multilineArg] = process.argv.slice(2);
const count = Number(countArg), multilineId = Number(multilineArg);
const seen = [];
const problems = [];
let opens = 0;

function finish(code) {
  clearTimeout(timer);
  es.close();
  // The first problems tell the story; a broken stream can produce hundreds.
  console.log(JSON.stringify({ ok: code === 0, opens, events: seen.length, problems: problems.slice(0, 8),
                               more_problems: Math.max(0, problems.length - 8) }));
  process.exit(code);
}

const timer = setTimeout(() => { problems.push("timed out after 30 s"); finish(1); }, 30_000);
const es = new EventSource(url);
es.onopen = () => { opens++; };
es.onmessage = (e) => {
  seen.push(e.lastEventId);
  const expected = seen.length;
  let data;
  try { data = JSON.parse(e.data); } catch (err) { problems.push(`event ${expected}: data is not JSON: ${e.data}`); return; }
  if (e.lastEventId !== String(expected)) problems.push(`event ${expected}: lastEventId ${e.lastEventId}`);
  if (data.seq !== expected) problems.push(`event ${expected}: seq ${data.seq}`);
  if (expected === multilineId && (data.multiline !== true || !e.data.includes("\n")))
    problems.push(`event ${expected}: multi-line data not joined with \\n: ${JSON.stringify(e.data)}`);
  if (expected % 2 === 0 && expected !== multilineId && data.text !== `événement ${expected}`)
    problems.push(`event ${expected}: text ${JSON.stringify(data.text)}`);
};
es.addEventListener("end", (e) => {
  const end = JSON.parse(e.data);
  if (end.count !== count) problems.push(`end event says ${end.count} events, expected ${count}`);
  if (seen.length !== count) problems.push(`saw ${seen.length} events before end, expected ${count}`);
  // (No lastEventId check here: this package gives an event without `id:` lastEventId "", where the WHATWG spec
  // and browsers keep the last id; the gateway sends no `id:` on this event, as the upstream did not.)
  if (opens !== 1) problems.push(`connection opened ${opens} times (a reconnect means the stream broke)`);
  finish(problems.length ? 1 : 0);
});
es.onerror = (e) => {
  // The stream ending without `end` makes EventSource reconnect (and the mock starts over, so ids repeat).
  problems.push(`error event: ${e.message ?? ""} ${e.code ?? ""}`.trim());
  if (es.readyState === EventSource.CLOSED || problems.length > 5) finish(1);
};
