"""``hybrid-gateway eval``: measure the gap between a route's prompted and fine-tuned arms, then decide.

The decision guide's steps 6-8 and 16 as one command. Modules, one job each:

* ``dataset``: the JSONL test set and the resumable journal of calls;
* ``call`` / ``runner``: one streamed call through a forced arm, or through the route unforced when it has a
  strategy (cascade); all of them, bounded, retried, journaled;
* ``local``: the gateway to call, in this process or at ``--url``;
* ``scoring``, ``bootstrap``: per-example scores, per-arm figures, paired intervals of differences;
* ``curve``: the route classifier's cost-quality curve over strong shares;
* ``recommendation``: the guide's framework as one pure function, over prompting, the fine-tune, routing and
  the route's strategy;
* ``summary``: all of the above as one dict, rendered by ``table`` (terminal) and ``report`` (HTML);

The ``eval`` subcommand's options live with the other subcommands, in ``gateway.cli.evaluate``.

Other packages use only what ``__all__`` names.

The run itself is ``gateway.evaluation.command.run``, imported only when ``eval`` runs (it loads
the app and the classifiers); the package itself hands on only its light vocabulary.
"""

from gateway.evaluation.vocabulary import DEFAULT_TOLERANCE, QUALITY

__all__ = ["DEFAULT_TOLERANCE", "QUALITY"]
