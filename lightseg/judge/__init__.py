"""The one judge: parity metrics, the tolerance file and the layered verdict.

Export verification, ``lightseg parity``, auto-pick and the demos all judge through
:func:`~lightseg.judge.verdict.compare` with :data:`~lightseg.judge.verdict.DEFAULT_TOLERANCES`,
so their verdicts cannot disagree.
"""
