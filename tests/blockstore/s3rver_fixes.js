// Preloaded into s3rver by s3_test (node --require) to correct two places where s3rver 3.7.1
// answers differently from Amazon S3, so the conformance suite tests the nighfs client and not
// the emulator. Each patch makes s3rver do what S3 documents; nothing else is changed.
//
// 1. ListObjects order. S3 lists keys in UTF-8 binary order. s3rver walks its folder tree, which
//    puts "a/1" before "a-x" ('-' < '/' in bytes) and then resumes pages from the wrong place.
//    Patched: list everything under the prefix, sort bytewise, page from start-after.
// 2. A ranged GET of an empty object. S3 answers 416 InvalidRange. s3rver answers 206 with
//    "Content-Range: bytes 0-0/0" and "Content-Length: 1" but sends no byte, so the client waits
//    for the byte until the connection times out. Patched: 416, as S3.
'use strict';

const fs = require('fs');
const path = require('path');

// process.argv[1] is .../node_modules/.bin/s3rver, a link to .../node_modules/s3rver/bin/s3rver.js.
const lib = path.join(path.dirname(fs.realpathSync(process.argv[1])), '..', 'lib');
const FilesystemStore = require(path.join(lib, 'stores', 'filesystem.js'));

const originalList = FilesystemStore.prototype.listObjects;
FilesystemStore.prototype.listObjects = async function listObjects(bucket, options) {
  if (options.delimiter) return originalList.call(this, bucket, options);
  const startAfter = options.startAfter || '';
  const maxKeys = options.maxKeys === undefined ? Infinity : options.maxKeys;
  const all = await originalList.call(this, bucket, {
    ...options,
    startAfter: '',
    maxKeys: Infinity,
  });
  // Keys are ASCII in these tests; for ASCII, JavaScript's UTF-16 order is byte order.
  const objects = all.objects
    .filter(o => o.key > startAfter)
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return {
    objects: objects.slice(0, maxKeys),
    commonPrefixes: [],
    isTruncated: objects.length > maxKeys,
  };
};

const originalGet = FilesystemStore.prototype.getObject;
FilesystemStore.prototype.getObject = async function getObject(bucket, key, options) {
  const object = await originalGet.call(this, bucket, key, options);
  if (object && object.range && object.size === 0) {
    if (object.content) object.content.destroy();
    object.content = null; // the controller answers 416 InvalidRange for a range without content
  }
  return object;
};
