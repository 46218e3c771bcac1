'use strict';
const assert = require('node:assert');
const { createServer, greet } = require('../src/server');

async function get(server, path) {
  const { port } = server.address();
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.json() };
}

describe('hello-service', () => {
  let server;
  before((done) => {
    server = createServer().listen(0, '127.0.0.1', done);
  });
  after((done) => server.close(done));

  it('is healthy', async () => {
    const res = await get(server, '/healthz');
    assert.strictEqual(res.status, 200);
    assert.deepStrictEqual(res.body, { status: 'ok' });
  });

  it('greets by name', async () => {
    const res = await get(server, '/?name=Ada');
    assert.strictEqual(res.body.message, 'hello, Ada');
  });

  it('answers 404 for unknown routes', async () => {
    const res = await get(server, '/nope');
    assert.strictEqual(res.status, 404);
  });

  describe('greet', () => {
    it('bounds long names', () => {
      assert.strictEqual(greet('x'.repeat(500)).length, 'hello, '.length + 100);
    });
  });
});
