"""Scan identity: a subject (one person) scanned in zero or more sessions.

The unit every per-image step works on is a **scan**: one FLAIR of one subject in one session.
A scan is named by its **scan ID**, which names its output folder
(``{results}/subjects/<scan ID>/``) and its log files:

* without a session the scan ID is the subject ID, so sheets without sessions keep the folder
  names they always had;
* with a session it is ``<subject ID>_ses-<session>``, BIDS's own file-name prefix (a BIDS
  participant ``sub-01`` in session ``pre`` is ``sub-01_ses-pre``).

``subject_id`` and ``session`` stay columns of the scan table and of the cohort table, so that
the scans of one person can be found and paired.
"""

from __future__ import annotations

import re

#: A subject ID: 1 to 64 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit.
SUBJECT_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
#: A session label: 1 to 32 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit.
SESSION_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}"
#: A scan ID (:func:`scan_id`); the workflow's ``subject`` wildcard is constrained to it.
SCAN_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}"
#: What joins a subject ID and a session in a scan ID.
SESSION_SEPARATOR = "_ses-"
#: A BIDS label (the value of an entity such as ``sub`` or ``ses``): letters and digits only.
BIDS_LABEL = re.compile(r"[A-Za-z0-9]+")

_NUMBER_RUN = re.compile(r"(\d+)")


def scan_id(subject_id: str, session: str = "") -> str:
    """The scan ID of ``subject_id`` in ``session`` ("" for none): the subject ID, or
    ``<subject_id>_ses-<session>``."""
    return f"{subject_id}{SESSION_SEPARATOR}{session}" if session else subject_id


def session_sort_key(session: str) -> tuple:
    """Key that sorts session labels naturally: ``2`` before ``10``, ``m6`` before ``m12``;
    the empty label (no session) first."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in _NUMBER_RUN.split(session) if part)


def bids_label(value: str, prefix: str) -> str | None:
    """The BIDS label of a subject ID or session (``prefix`` ``"sub"`` or ``"ses"``): ``value``
    without a leading ``<prefix>-``; None when what is left is not letters and digits only (BIDS
    labels allow nothing else, so such an ID cannot name a BIDS file)."""
    label = value[len(prefix) + 1 :] if value.startswith(f"{prefix}-") else value
    return label if BIDS_LABEL.fullmatch(label) else None
