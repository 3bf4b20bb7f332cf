# Writes replay.golden: the original Batchy's documented curl and waitsy usage (its README and
# /work/shared/reference/003_*.txt: load_cfg, get_status, open_batch/json and /infa, close_batch,
# fail_batch, waitsy.py -wf wf1, all at http://0.0.0.0:5000) as request/response pairs, with the
# clock fixed, for internal/api's TestOriginalReplay to replay against batchy byte for byte.
#
# Run it with Python 2.7, the original's runtime, from internal/api:
#     python2 testdata/original/replay.py > testdata/original/replay.golden
# (with pyenv: PYENV_VERSION=2.7.18 python2 ...). It needs nothing beyond the standard library.
#
# Where each expected byte comes from:
#   - the original's source: batchy.py and waitsy.py of github.com/elliottcordo/batchy at commit
#     42bf609ec3f67a11139f9a3a12ca75fb207808e6 (the code behind the README that
#     /work/shared/reference/003_fd86aa6b70b343b5.txt reproduces, and its cfg/wf1.yaml);
#   - layout: the original's batchy.py answered every route with
#     Response(json.dumps(data, default=json_serial, indent=4)), and /open_batch/<wf>/infa with
#     infa_param(): "\n[" + str(job) + "]\n" then "$$" + str(field) + "=" + str(value) + "\n" per field.
#     Here those are Python 2.7's own json.dumps(indent=4) (", " and ": " separators, ensure_ascii)
#     and str() (datetime as "2026-11-22 13:49:30.840061", None, True), on the state below;
#   - /index: the original's index() returned 'Batchy v0.00001';
#   - an unknown workflow: the original read an empty Redis hash, {}, and answered json.dumps({});
#   - waitsy.py: GET <URL>/get_status/<wf> with python-requests, URL = 'http://0.0.0.0:5000/...',
#     looping until every job's status is 'success' and str(batch_end)[:10] is today (UTC), every
#     10 s, through failures;
#   - values: SPEC.md's rules (its example is this very sequence on reference/wf1.yaml), not the
#     original's bugs. Every place where batchy answers what the original did not is a named
#     difference (DIFFERENCES below), each a row of docs/coming-from-original.md's table, which the
#     test checks.
import json
import sys
from collections import OrderedDict
from datetime import datetime, timedelta

# Each difference batchy makes on purpose, by the id used in docs/coming-from-original.md.
DIFFERENCES = OrderedDict([
    ('key-order', 'jobs in file order and fields sorted by name; the original wrote Python 2 dict order'),
    ('json-dates', 'dates in JSON as RFC 3339 in UTC with microseconds (2026-11-22T13:49:30.840061Z), those a file gives included; '
                   'the original wrote isoformat() (2026-11-22T13:49:30.840061, no fraction at zero microseconds) and the file as written'),
    ('to-date', 'every opened job also has to_date (= batch_start), the end of its window'),
    ('from-date-leak', 'from_date by SPEC.md: the original carried from_date over from one job to the next, so a job '
                       'that had not succeeded got the clock or the previous job\'s window'),
    ('content-type', 'application/json for JSON, text/plain for infa and /index; the original sent text/html for everything'),
    ('unknown-workflow', 'open_batch, close_batch and fail_batch of a workflow that is not loaded answer 404; the original answered 200 {} (and /get_status/<wf> still does)'),
    ('unknown-format', '/open_batch/<wf>/xml answers 400 before opening anything; the original opened the batch, then failed with 500'),
])

# Differences the replay cannot show (they need concurrency, a reload, the Redis keys or the
# network): listed here so that every row of the documentation's table is accounted for.
NOT_REPLAYED = OrderedDict([
    ('atomic', 'needs concurrent calls'),
    ('reload-keeps-state', 'needs a reload after a batch'),
    ('batch-id', 'needs two opens within one second'),
    ('reopen', 'needs an open of an open batch'),
    ('history', 'reads Redis keys'),
    ('redis-keys', 'reads Redis keys'),
    ('redis-needed', 'a deployment choice'),
    ('listening', 'a deployment choice'),
    ('names', 'needs invalid names'),
    ('name-collisions', 'needs a colliding workflow file'),
    ('workflow-files', 'needs an invalid workflow file'),
    ('errors', 'the error bodies of the routes; unknown-workflow and unknown-format show two'),
    ('waitsy-unknown', 'waitsy.py said ready for an unknown workflow; waitsy exits 3 (see TestUsageAndUnknown)'),
    ('waitsy-unreachable', 'waitsy.py crashed on a connection error; waitsy retries (see TestUnreachable)'),
    ('waitsy-output', 'waitsy prints its own status lines on stderr, not the original\'s on stdout'),
    ('infa-values', 'lists and maps as JSON, non-ASCII as UTF-8, control characters as spaces: needs such values'),
    ('end-open-only', 'the documented usage never ends a job that is not open (see TestOriginalEndNeverFlips)'),
    ('reload-ends-removed', 'needs a reload that removes an open job'),
])

WF1 = OrderedDict([
    ('job1', {'param1': 'hello', 'param2': '2016-01-01', 'status': 'success', 'batch_end_date': '2016-01-01T23:59'}),
    ('job2', {'reprocess_hours': 2, 'param1': 'hello', 'yippee': '2016-01-01', 'from_date': datetime(2016, 1, 1, 23, 59), 'status': 'new'}),
    ('job3', {'reprocess_hours': 2, 'trunc_start': True, 'param1': 'hello', 'param2': '2016-01-01', 'from_date': datetime(2016, 1, 1, 23, 59), 'status': 'new'}),
])

EPOCH = datetime(1970, 1, 1)
INITIAL = datetime(1776, 7, 4, 23, 59)

state = OrderedDict()
last_batch_id = [0]
out = sys.stdout


def rfc3339(t):  # difference json-dates
    return '%04d-%02d-%02dT%02d:%02d:%02d.%06dZ' % (t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond)


def for_json(data):
    # key-order: jobs in file order, fields sorted; json-dates: datetimes as RFC 3339.
    res = OrderedDict()
    for job, fields in data.items():
        res[job] = OrderedDict((k, rfc3339(v) if isinstance(v, datetime) else v) for k, v in sorted(fields.items()))
    return res


def dumps(data):
    return json.dumps(for_json(data), indent=4)


def infa_param(data):
    result = ''
    for k, v in data.items():
        result += '\n[' + str(k) + ']\n'
        for k1, v1 in sorted(v.items()):  # key-order
            result += '$$' + str(k1) + '=' + str(v1) + '\n'
    return result


def open_batch(now):
    batch_id = max(int((now - EPOCH).total_seconds()), last_batch_id[0] + 1)
    last_batch_id[0] = batch_id
    for job, v in state.items():
        # SPEC.md's window rules (from-date-leak: computed per job).
        if v.get('status') == 'success' and v.get('batch_start') is not None:
            from_date = v['batch_start'] - timedelta(hours=v.get('reprocess_hours', 0))
        elif v.get('from_date') is not None:
            from_date = v['from_date']
        else:
            from_date = INITIAL
        if v.get('trunc_start'):
            from_date = from_date.replace(hour=0, minute=0, second=0, microsecond=0)
        v.update(from_date=from_date, to_date=now, batch_start=now, batch_end=None, status='open', batch_id=batch_id)  # to-date


def end_batch(now, status):
    for v in state.values():
        v.update(batch_end=now, status=status)


def step(clock, path, status, ctype, body, differences=(), note=None, headers=()):
    out.write('\n')
    if note:
        out.write('# ' + note + '\n')
    if differences:
        out.write('differences ' + ' '.join(differences) + '\n')
    if clock:
        out.write('clock ' + rfc3339(clock) + '\n')
    out.write('GET ' + path + '\n')
    for h in headers:
        out.write('header ' + h + '\n')
    out.write('status %d\n' % status)
    out.write('type ' + ctype + '\n')
    out.write('body %d\n' % len(body))
    out.write(body + '\n')


def waitsy(line):
    out.write('\nwaitsy ' + line + '\n')


JSON = 'application/json'
TEXT = 'text/plain; charset=utf-8'
CURL = ('User-Agent: curl/7.47.0', 'Host: 0.0.0.0:5000')
# waitsy.py's requests.get(URL + wf), URL = 'http://0.0.0.0:5000/get_status/'.
WAITSY_PY = ('User-Agent: python-requests/2.10.0', 'Host: 0.0.0.0:5000')
T0 = datetime(2026, 11, 22, 13, 40, 0, 5)
T1 = datetime(2026, 11, 22, 13, 49, 30, 840061)
T2 = datetime(2026, 11, 22, 13, 59, 59, 999999)
T3 = datetime(2026, 11, 22, 14, 0, 0)
T4 = datetime(2026, 11, 22, 14, 30, 0, 250000)
T5 = datetime(2026, 11, 22, 15, 0, 0)
T6 = datetime(2026, 11, 22, 15, 45, 12, 345678)

out.write('''# The original Batchy's documented curl and waitsy usage, replayed against batchy by
# internal/api's TestOriginalReplay, byte for byte. Written by testdata/original/replay.py with
# Python 2.7 (the original's runtime) from the original's source (github.com/elliottcordo/batchy at
# 42bf609: batchy.py, waitsy.py): see its header for where each expected byte comes from.
# Each step is: optional "differences <id>..." (the documented differences its bytes rely on),
# optional "clock <time>" (the server's clock from then on), "GET <path>", optional "header
# <name>: <value>" lines, "status", "type" (Content-Type), "body <n>" and then exactly n bytes of
# body and a line break. "waitsy start <args>" starts batchy's waitsy ("{url}" is the server's
# address as http://0.0.0.0:<port>, "{today}" the clock's midnight: waitsy.py's today);
# "waitsy running" checks it has not exited; "waitsy exit <code>" that it exits with code.
''')
for k, v in DIFFERENCES.items():
    out.write('difference %s: %s\n' % (k, v))
for k, v in NOT_REPLAYED.items():
    out.write('not-replayed %s: %s\n' % (k, v))

step(None, '/index', 200, TEXT, 'Batchy v0.00001', ['content-type'], 'the original\'s /index', CURL)

for job, fields in WF1.items():
    state[job] = dict(fields)
step(T0, '/load_cfg/wf1', 200, JSON, dumps(state), ['key-order', 'json-dates', 'content-type'],
     'http://0.0.0.0:5000/load_cfg/wf1', CURL)
step(None, '/get_status/wf1', 200, JSON, dumps(state), ['key-order', 'json-dates', 'content-type'],
     'http://0.0.0.0:5000/get_status/wf1', CURL)

waitsy('start -wf wf1 --url {url} --since {today}')
open_batch(T1)
step(T1, '/open_batch/wf1/json', 200, JSON, dumps(state),
     ['key-order', 'json-dates', 'content-type', 'to-date', 'from-date-leak'], 'http://0.0.0.0:5000/open_batch/wf1/json', CURL)
step(None, '/get_status/wf1', 200, JSON, dumps(state),
     ['key-order', 'json-dates', 'content-type', 'to-date', 'from-date-leak'], 'waitsy.py polls: not ready (status open)', WAITSY_PY)
waitsy('running')
end_batch(T2, 'success')
step(T2, '/close_batch/wf1', 200, JSON, dumps(state),
     ['key-order', 'json-dates', 'content-type', 'to-date', 'from-date-leak'], 'http://0.0.0.0:5000/close_batch/wf1', CURL)
step(None, '/get_status/wf1', 200, JSON, dumps(state),
     ['key-order', 'json-dates', 'content-type', 'to-date', 'from-date-leak'], 'waitsy.py polls: ready (success today)', WAITSY_PY)
waitsy('exit 0')

open_batch(T3)
step(T3, '/open_batch/wf1/infa', 200, TEXT, infa_param(state), ['key-order', 'content-type', 'to-date'],
     'http://0.0.0.0:5000/open_batch/wf1/infa: the Informatica parameter file, str() values', CURL)
waitsy('start -wf wf1 --url {url} --since {today}')
end_batch(T4, 'failure')
step(T4, '/fail_batch/wf1', 200, JSON, dumps(state),
     ['key-order', 'json-dates', 'content-type', 'to-date'], 'http://0.0.0.0:5000/fail_batch/wf1: the original\'s word, failure', CURL)
step(None, '/get_status/wf1', 200, JSON, dumps(state),
     ['key-order', 'json-dates', 'content-type', 'to-date'], 'waitsy.py polls through the failure: a rerun may still succeed today', WAITSY_PY)
waitsy('running')
open_batch(T5)
step(T5, '/open_batch/wf1', 200, JSON, dumps(state),
     ['key-order', 'json-dates', 'content-type', 'to-date', 'from-date-leak'], 'the rerun: the failed window again', CURL)
waitsy('running')
end_batch(T6, 'success')
step(T6, '/close_batch/wf1', 200, JSON, dumps(state),
     ['key-order', 'json-dates', 'content-type', 'to-date', 'from-date-leak'], None, CURL)
waitsy('exit 0')

step(None, '/get_status/nosuch', 200, JSON, json.dumps({}, indent=4), ['content-type'],
     'a workflow that is not loaded: the original\'s empty hash', CURL)
err = '{"error":{"code":"not_found","message":"workflow nosuch is not loaded: load its configuration first (GET /load_cfg/nosuch)"}}'
step(None, '/open_batch/nosuch', 404, 'application/json; charset=utf-8', err, ['unknown-workflow', 'content-type'],
     'the original answered 200 {} and a script went on with no window', CURL)
before = dumps(state)
err = '{"error":{"code":"invalid","message":"format \\"xml\\" is unknown: use json, infa or env"}}'
step(None, '/open_batch/wf1/xml', 400, 'application/json; charset=utf-8', err, ['unknown-format', 'content-type'],
     'the original opened the batch, then answered 500', CURL)
step(None, '/get_status/wf1', 200, JSON, before, ['key-order', 'json-dates', 'content-type', 'to-date', 'from-date-leak'],
     'nothing was opened', CURL)
