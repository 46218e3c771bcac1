import * as assert from 'node:assert/strict';
import { ToldOnce } from '../../extension/util/toldOnce';

describe('ToldOnce', () => {
  it('says a key is new once, and forgets the oldest past its bound', () => {
    const told = new ToldOnce(2);
    assert.equal(told.first('file:///a#1'), true);
    assert.equal(told.first('file:///a#1'), false);
    assert.equal(told.first('file:///b#1'), true, 'another folder, the same id');
    assert.equal(told.first('file:///a#2'), true);
    assert.equal(told.first('file:///b#1'), false, 'still remembered');
    assert.equal(told.first('file:///a#1'), true, 'the oldest was forgotten');
  });
});
