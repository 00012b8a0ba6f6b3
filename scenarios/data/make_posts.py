"""Writes posts.jsonl: the synthetic pool of platform_day.yaml (original texts written for lsbm-sim, no real
data; CC0). Each topic has hand-written subjects and post frames; every subject is put in every frame.

    python scenarios/data/make_posts.py
"""

import json
from pathlib import Path

SUBJECTS = {
    "environment": ["the river cleanup on Saturday", "our neighbourhood's new compost bins", "the heatwave warnings",
                    "the city's plan for more bike lanes", "plastic-free grocery shopping", "the wildfire smoke this week"],
    "technology": ["the new phone update", "my first home-built AI assistant", "the data breach at that app",
                   "folding laptops", "the open-source tool I switched to", "electric scooters with swappable batteries"],
    "politics": ["the school budget vote", "the new housing bill", "tonight's debate", "the turnout in local elections",
                 "the proposed transit tax", "the town hall on policing"],
    "health": ["getting eight hours of sleep", "the flu shots at the pharmacy", "walking 10,000 steps a day",
               "the new clinic downtown", "cutting back on sugar", "talking about mental health at work"],
    "sports": ["last night's overtime win", "the marathon this weekend", "our coach's surprise resignation",
               "the rookie who scored twice", "the stadium renovation", "women's football finally on prime time"],
    "entertainment": ["the season finale", "the surprise album drop", "the film festival lineup",
                      "that reality show reunion", "the concert tickets fiasco", "the indie game everyone is playing"],
    "business": ["the coffee shop closing on Main Street", "four-day work weeks", "the startup that just raised money",
                 "rising rents for small shops", "the layoffs at the plant", "buying local for the holidays"],
    "science": ["the comet visible tonight", "the new battery chemistry paper", "the deep-sea creature they found",
                "the Mars sample results", "why octopuses are so smart", "the vaccine trial results"],
}
FRAMES = [
    "Can we talk about {s}? I have thoughts.",
    "Honestly, {s} is the best news I've heard all week.",
    "Unpopular opinion: people are overreacting about {s}.",
    "Thread: everything you need to know about {s}.",
    "Just read a long piece on {s}. Worth your time.",
    "Is anyone else worried about {s}?",
]

rows = [{"text": frame.format(s=subject), "topic": topic}
        for topic, subjects in SUBJECTS.items() for subject in subjects for frame in FRAMES]
out = Path(__file__).with_name("posts.jsonl")
out.write_text("".join(json.dumps(r) + "\n" for r in rows))
print(f"{len(rows)} posts -> {out}")
