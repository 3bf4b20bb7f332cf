# Writes the original-layout golden files of internal/format with Python 2.7, the original
# Batchy's runtime, so that their bytes come from the library calls the original's batchy.py
# (github.com/elliottcordo/batchy at 42bf609) made, not from batchy's Go code:
#   JSON: json.dumps(data, indent=4) (batchy.py render_response), Python 2's separators (", " and
#         ": ", so a line ends with a space after its comma) and ensure_ascii.
#   infa: for each job "\n[" + str(job) + "]\n", then "$$" + str(field) + "=" + str(value) + "\n"
#         (batchy.py infa_param), dates as datetime objects (str: "2026-11-22 13:49:30").
# The values are batchy's (SPEC.md's example after the first open), not the original's: its
# from_date leaked from one job to the next (a bug batchy fixed). Jobs are in file order and
# fields sorted by name (the original's order was Python's dict order). Run from
# internal/format with Python 2.7:  python2 testdata/original.py (with pyenv:
# PYENV_VERSION=2.7.18 python2 testdata/original.py)
import json
from collections import OrderedDict
from datetime import datetime

OPEN = datetime(2026, 11, 22, 13, 49, 30)
END = datetime(2026, 11, 22, 14, 0, 0, 250000)


def jobs(status, batch_end, dates):
    d = (lambda t: t) if dates else (lambda t: '%04d-%02d-%02dT%02d:%02d:%02d.%06dZ' % (
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond))
    j = OrderedDict()
    j['job1'] = dict(param1='hello', param2='2016-01-01', status=status, batch_end_date='2016-01-01T23:59',
                     from_date=d(datetime(1776, 7, 4, 23, 59)), to_date=d(OPEN), batch_start=d(OPEN),
                     batch_end=batch_end and d(batch_end), batch_id=1795355370)
    j['job2'] = dict(reprocess_hours=2, param1='hello', yippee='2016-01-01',
                     from_date=d(datetime(2016, 1, 1, 23, 59)), to_date=d(OPEN), status=status,
                     batch_start=d(OPEN), batch_end=batch_end and d(batch_end), batch_id=1795355370)
    j['job3'] = dict(reprocess_hours=2, trunc_start=True, param1='hello', param2='2016-01-01',
                     from_date=d(datetime(2016, 1, 1)), to_date=d(OPEN), status=status,
                     batch_start=d(OPEN), batch_end=batch_end and d(batch_end), batch_id=1795355370)
    for k in j:
        j[k] = OrderedDict(sorted(j[k].items()))
    return j


def infa(data):
    out = ''
    for k, v in data.iteritems():
        out += '\n[' + str(k) + ']\n'
        for k1, v1 in v.iteritems():
            out += '$$' + str(k1) + '=' + str(v1) + '\n'
    return out


for name, content in [
    ('wf1.original.json', json.dumps(jobs('open', None, False), indent=4)),
    ('wf1.original.infa', infa(jobs('open', None, True))),
    ('wf1.failed.original.json', json.dumps(jobs('failure', END, False), indent=4)),
    ('wf1.failed.original.infa', infa(jobs('failure', END, True))),
]:
    with open('testdata/' + name, 'wb') as f:
        f.write(content)
