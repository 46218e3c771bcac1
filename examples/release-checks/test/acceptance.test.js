'use strict';
// Acceptance tests against a deployed environment: $BASE_URL is its address.
const assert = require('node:assert/strict');
const { test } = require('node:test');

const base = process.env.BASE_URL ?? 'http://127.0.0.1:8080';

test('lists the items', async () => {
  const res = await fetch(`${base}/api/items`);
  assert.equal(res.status, 200);
  const { items } = await res.json();
  assert.deepEqual(items.map((i) => i.name), ['widget', 'gadget']);
});

test('answers an unknown route with 404 and a message', async () => {
  const res = await fetch(`${base}/nowhere`);
  assert.equal(res.status, 404);
  assert.match((await res.json()).error, /no route/);
});
