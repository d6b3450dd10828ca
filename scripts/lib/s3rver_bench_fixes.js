// Preloaded into s3rver by scripts/bench.sh (node --require, after
// tests/blockstore/s3rver_fixes.js) to correct one more place where s3rver 3.7.1 answers
// differently from Amazon S3, one that only the peers of the benchmark reach.
//
// A delimited listing ("folders") of PREFIX leaves out a common prefix PREFIX/a/ when a/ holds
// no object itself, only deeper ones (PREFIX/a/b/c): s3rver's folder walk stops at the first
// level below a common prefix. rclone, which writes no folder markers, then sees an empty folder
// after a remount (and `rm -rf` of it "succeeds" without deleting a thing). Patched: such
// folders are added as common prefixes, as S3 lists them. Nothing else is changed.
'use strict';

const fs = require('fs');
const path = require('path');

// process.argv[1] is .../node_modules/.bin/s3rver, a link to .../node_modules/s3rver/bin/s3rver.js.
const lib = path.join(path.dirname(fs.realpathSync(process.argv[1])), '..', 'lib');
const FilesystemStore = require(path.join(lib, 'stores', 'filesystem.js'));

const OBJECT_SUFFIX = '._S3rver_object';

// True if the folder `dir` holds an object file at any depth.
function holdsObject(dir) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    return false;
  }
  for (const e of entries) {
    if (e.isFile() && e.name.endsWith(OBJECT_SUFFIX)) return true;
  }
  return entries.some(e => e.isDirectory() && holdsObject(path.join(dir, e.name)));
}

const delimitedList = FilesystemStore.prototype.listObjects;
FilesystemStore.prototype.listObjects = async function listObjects(bucket, options) {
  const result = await delimitedList.call(this, bucket, options);
  const prefix = options.prefix || '';
  if (options.delimiter !== '/' || (prefix !== '' && !prefix.endsWith('/')) ||
      process.platform === 'win32') {
    return result;
  }
  const startAfter = options.startAfter || '';
  // On a truncated page, only prefixes up to its last key: the next page starts after it.
  const last = result.objects.length ? result.objects[result.objects.length - 1].key : '';
  const upTo = result.isTruncated ? last : null;
  const dir = path.join(this.getBucketPath(bucket), prefix);
  const prefixes = new Set(result.commonPrefixes);
  let entries = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const p = prefix + e.name + '/';
    if (p <= startAfter || (upTo !== null && p > upTo)) continue;
    if (!prefixes.has(p) && holdsObject(path.join(dir, e.name))) prefixes.add(p);
  }
  result.commonPrefixes = [...prefixes].sort();
  return result;
};
