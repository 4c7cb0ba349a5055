"""Word lists behind the hand-made features: what marks maths, code, reasoning or a domain.

Kept apart from the extractor so the lists can grow without touching the hot path. Each word maps
to exactly one cue; the extractor counts cue hits in a single pass over the words.
"""

from __future__ import annotations

_CUES: dict[str, str] = {
    "math": """equation solve integral derivative matrix polynomial probability theorem prime
        integer integers fraction ratio sqrt log sum product remainder divisible functions
        vector vectors eigenvalue limit series variance mean median percentage factor
        factors root roots inequality algebra geometry triangle circle radius area volume angle""",
    "code": """def return import class function var const print printf int void public static
        include lambda elif null none true false array string python java javascript sql
        algorithm compile compiler runtime recursion pointer loop bug code program""",
    "reasoning": """why explain prove derive justify reason reasoning compare analyze analyse
        evaluate infer implies imply conclude conclusion assume assumption therefore hence
        argument argues valid validity fallacy logically""",
    "multi_step": """then after each total remaining rest twice half times more less left
        per every additional altogether initially finally first second third later""",
    "quantity": """many much cost costs price dollars cents hours minutes days weeks miles
        pounds kg meters percent profit""",
    "open_task": """write draft compose create generate list summarize describe design
        imagine pretend story poem essay email blog plan suggest brainstorm""",
    "science": """energy force mass velocity acceleration electron atom molecule reaction
        acid base cell cells gene genes protein dna enzyme species organism temperature
        pressure wave charge field quantum""",
    "medicine": """patient patients disease clinical diagnosis symptoms treatment drug dose
        syndrome infection blood muscle nerve artery tumor therapy physician hospital""",
    "law": """court plaintiff defendant statute contract law legal jury constitutional
        amendment liability tort negligence appeal judge evidence property rights""",
    "society": """war king empire century government president treaty revolution political
        economy economic market inflation gdp trade tax society culture religion""",
    "ethics": """moral morally ethics ethical wrong virtue duty justice philosopher
        philosophy kant utilitarian""",
}

CUE_NAMES: tuple[str, ...] = tuple(_CUES)

WORD_CUE: dict[str, int] = {
    word: index for index, words in enumerate(_CUES.values()) for word in words.split()
}
