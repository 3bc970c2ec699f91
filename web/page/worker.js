// Kasane transform runner: one dedicated Worker per admitted module. The page admits the
// module (its registry entry, hash, signer, revocation, imports, exports and declared memory
// are checked by the client's Rust code) before sending it here, and terminates this Worker
// when a call outruns its wall-clock limit: browsers have no fuel metering.
'use strict';

const MAX_OUTPUT = 64; // kasane_abi::MAX_OUTPUT_LEN
let compiled = null;
let memoryLimit = 0;

function fail(message) {
  throw new Error(message);
}

// One derive, on a fresh instance (nothing carries over from one call to the next).
function derive(input) {
  const instance = new WebAssembly.Instance(compiled, {});
  const ex = instance.exports;
  if (typeof ex._initialize === 'function') ex._initialize();
  const inPtr = ex.kasane_alloc(input.length) >>> 0;
  const outPtr = ex.kasane_alloc(MAX_OUTPUT) >>> 0;
  if (inPtr === 0 || outPtr === 0) fail('kasane_alloc returned 0');
  const mem = () => ex.memory.buffer;
  if (inPtr + input.length > mem().byteLength) fail('input pointer outside memory');
  new Uint8Array(mem(), inPtr, input.length).set(input);
  const n = ex.kasane_derive(inPtr, input.length, outPtr, MAX_OUTPUT);
  if (mem().byteLength > memoryLimit) fail('transform exceeded its linear memory limit');
  if (n < 0) fail(`transform failed with guest error ${n}`);
  if (n < 1 || n > MAX_OUTPUT) fail(`transform returned length ${n}`);
  if (outPtr + n > mem().byteLength) fail('output range outside memory');
  return new Uint8Array(mem().slice(outPtr, outPtr + n));
}

self.onmessage = (event) => {
  const msg = event.data;
  try {
    if (msg.kind === 'load') {
      compiled = new WebAssembly.Module(msg.module);
      if (WebAssembly.Module.imports(compiled).length !== 0) fail('module has imports');
      memoryLimit = msg.memoryLimit;
      self.postMessage({ id: msg.id, ok: true });
    } else if (msg.kind === 'derive') {
      if (compiled === null) fail('no module loaded');
      const out = derive(msg.input);
      self.postMessage({ id: msg.id, ok: true, out }, [out.buffer]);
    }
  } catch (e) {
    self.postMessage({ id: msg.id, ok: false, error: String(e && e.message ? e.message : e) });
  }
};
