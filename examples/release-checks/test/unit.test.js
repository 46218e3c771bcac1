'use strict';
// Unit tests, run once per time zone by the pipeline's matrix stage ($TZ).
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { localTime } = require('../src/server');

test('formats a time of day as HH:MM in any time zone', () => {
  assert.match(localTime(new Date(0)), /^\d\d:\d\d$/);
});

test('pads hours and minutes', () => {
  assert.equal(localTime(new Date(2024, 0, 1, 7, 5)), '07:05');
});
