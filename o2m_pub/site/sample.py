"""Sample content: the one post `o2m init` starts a site with, and the posts of `o2m demo`.

The demo is the first thing a newcomer sees, so it is written to be read: one persona
(Ada, who hikes, cooks, bakes, programs and reads) posting over the ~18 months before
`now`, in every shape the builder handles -- long articles with headings, code, tables
and footnotes; short untitled notes; page bundles with images; a draft; friends-only
posts; a reply; links between posts.

Everything here is plain data plus two functions. Dates are computed from `now` so the
demo always looks recent; given the same `now` the output is byte-for-byte the same.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# --------------------------------------------------------------------------------------
# `o2m init`: the hello post

HELLO_BODY = """\
Welcome to your new site! This post is a plain text file in `content/`. Open it in
any editor, change it, or delete it once you've read it -- it's yours.

## Writing a post

A post is a Markdown file with a few settings at the top, between two lines of
three dashes (the "front matter"):

```yaml
---
title: A walk along the river
date: 2026-05-02T18:30:00+01:00
tags: [walks, photos]
summary: Herons, a broken bridge, and the best chips in town.
audience: public
---
Write the post here, in Markdown: *emphasis*, [links](https://example.org/), lists...
```

Only `date` is required. `title` is optional: leave it out for a short note, and it
shows up like a microblog post. `summary` is used on index pages and in feeds (without
it, o2m takes the first paragraph). Add `draft: true` to keep a post out of the site
until it's ready (`o2m build --drafts` shows drafts in a private preview).

Save posts as `content/YEAR/some-name.md`; the file name becomes the post's address.

## Who can read it

**Posts are private unless they say otherwise.** A post without `audience:` is for
`friends` only: it never appears on the public site, and only the friends you've added
can read it. Write `audience: public` for everyone, or name a group or a friend (or a
list of them) for something in between.

This post says `audience: public`, so it's on your public site.

## Pictures

To put pictures in a post, make it a *page bundle*: a folder with the post in
`index.md` and the pictures next to it.

```text
content/2026/river-walk/
    index.md
    heron.jpg
```

Then write `![A heron on the weir](heron.jpg)` in `index.md`. To link to another of
your posts, link to its `.md` file by relative path: from a post in `content/2026/`,
`[last year's walk](../2025/bridge.md)`.

## Building the site

Run `o2m build` in the site's folder: it turns `content/` into web pages in `build/`,
redoing only what changed, then open `build/index.html`. Friends' posts are encrypted
for them in the same build: `o2m card` gives you your card to share, and
`o2m friend add` adds theirs.

Happy writing!
"""


def hello_post(now: dt.datetime) -> str:
    """The text of the sample post `o2m init` puts in content/.

    It is public (so a fresh site has something to show) and short: a newcomer should
    learn the front matter fields, the private-by-default audience, notes, page bundles
    and the two commands from it in a minute, then replace it.
    """
    return _front_matter(
        title="Hello, world",
        date=now.replace(microsecond=0).isoformat(),
        tags=["meta"],
        summary="Your first post: how writing on o2m works, in two minutes.",
        audience="public",
    ) + "\n" + HELLO_BODY


# --------------------------------------------------------------------------------------
# `o2m demo`: the images of the page bundles (small SVGs, written by hand)

RIDGE_SVG = """\
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 640 320" width="640" height="320" role="img" aria-labelledby="t">
  <title id="t">A chalk ridge at dawn: layered hills, a low sun, a path along the crest</title>
  <defs>
    <linearGradient id="sky" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#3b4a7a"/>
      <stop offset="0.55" stop-color="#e89a6b"/>
      <stop offset="1" stop-color="#f6d7a7"/>
    </linearGradient>
  </defs>
  <rect width="640" height="320" fill="url(#sky)"/>
  <circle cx="470" cy="170" r="34" fill="#fff1c9" opacity="0.9"/>
  <path d="M0 190 L80 160 L150 175 L230 135 L310 165 L390 140 L470 170 L560 145 L640 165 L640 320 L0 320 Z" fill="#8d7aa0" opacity="0.75"/>
  <path d="M0 230 L90 200 L170 215 L260 180 L340 205 L430 185 L520 210 L640 190 L640 320 L0 320 Z" fill="#5f6f8f"/>
  <path d="M0 270 Q120 225 240 245 T480 240 T640 235 L640 320 L0 320 Z" fill="#3f5a4a"/>
  <path d="M20 300 Q150 262 260 270 T470 258 T630 252" fill="none" stroke="#e9e4d4" stroke-width="3" stroke-dasharray="8 6" stroke-linecap="round"/>
  <g fill="#2c3d33">
    <path d="M548 252 l10 -30 l10 30 Z"/>
    <path d="M566 250 l8 -24 l8 24 Z"/>
  </g>
  <g stroke="#2b2b2b" stroke-width="1.5" fill="none">
    <path d="M120 80 q6 -5 12 0 q6 -5 12 0"/>
    <path d="M160 62 q5 -4 10 0 q5 -4 10 0"/>
  </g>
</svg>
"""

ELEVATION_SVG = """\
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 640 220" width="640" height="220" role="img" aria-labelledby="t">
  <title id="t">Rough elevation profile of the three days, between about 80 and 270 metres</title>
  <rect width="640" height="220" fill="#fbfaf6"/>
  <g stroke="#d9d4c7" stroke-width="1">
    <line x1="50" y1="40" x2="620" y2="40"/>
    <line x1="50" y1="100" x2="620" y2="100"/>
    <line x1="50" y1="160" x2="620" y2="160"/>
    <line x1="240" y1="30" x2="240" y2="180"/>
    <line x1="430" y1="30" x2="430" y2="180"/>
  </g>
  <g font-family="sans-serif" font-size="11" fill="#6b665b">
    <text x="10" y="44">270 m</text>
    <text x="10" y="104">180 m</text>
    <text x="10" y="164">90 m</text>
    <text x="120" y="200">Day 1</text>
    <text x="315" y="200">Day 2</text>
    <text x="505" y="200">Day 3</text>
  </g>
  <path d="M50 95 L80 60 L110 55 L140 70 L170 50 L200 65 L240 120 L270 80 L300 60 L330 45 L360 40 L390 55 L430 75 L460 70 L490 90 L520 100 L550 120 L580 150 L620 165 L620 180 L50 180 Z" fill="#cfe0c8"/>
  <path d="M50 95 L80 60 L110 55 L140 70 L170 50 L200 65 L240 120 L270 80 L300 60 L330 45 L360 40 L390 55 L430 75 L460 70 L490 90 L520 100 L550 120 L580 150 L620 165" fill="none" stroke="#3f6f4a" stroke-width="2.5" stroke-linejoin="round"/>
  <circle cx="360" cy="40" r="4" fill="#b5523b"/>
  <text x="368" y="34" font-family="sans-serif" font-size="11" fill="#b5523b">White Horse Hill</text>
</svg>
"""

LOAF_SVG = """\
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 640 300" width="640" height="300" role="img" aria-labelledby="t">
  <title id="t">Cross-section of a sourdough loaf, labelled: ear, score, crust, open crumb, tight crumb at the base</title>
  <rect width="640" height="300" fill="#fdf9f1"/>
  <path d="M110 240 C 100 150, 190 80, 320 78 C 450 80, 540 150, 530 240 Z" fill="#a8642f"/>
  <path d="M128 232 C 122 160, 200 100, 320 98 C 440 100, 516 160, 512 232 Z" fill="#f3dfb8"/>
  <path d="M300 80 C 330 60, 370 62, 392 84" fill="none" stroke="#7a4520" stroke-width="6" stroke-linecap="round"/>
  <g fill="#fdf9f1" stroke="#d9bf8f" stroke-width="1.5">
    <ellipse cx="250" cy="140" rx="16" ry="10"/>
    <ellipse cx="320" cy="130" rx="22" ry="13"/>
    <ellipse cx="390" cy="150" rx="14" ry="9"/>
    <ellipse cx="210" cy="180" rx="10" ry="7"/>
    <ellipse cx="285" cy="175" rx="12" ry="8"/>
    <ellipse cx="360" cy="190" rx="11" ry="7"/>
    <ellipse cx="440" cy="190" rx="9" ry="6"/>
    <ellipse cx="250" cy="214" rx="5" ry="3"/>
    <ellipse cx="320" cy="218" rx="5" ry="3"/>
    <ellipse cx="390" cy="215" rx="5" ry="3"/>
  </g>
  <g stroke="#4a4a4a" stroke-width="1.2" fill="none">
    <path d="M392 82 L470 40"/>
    <path d="M150 170 L70 150"/>
    <path d="M320 130 L560 110"/>
    <path d="M320 218 L560 262"/>
  </g>
  <g font-family="sans-serif" font-size="14" fill="#333">
    <text x="476" y="40">ear (where the score opened)</text>
    <text x="10" y="145">crust</text>
    <text x="566" y="114">open crumb</text>
    <text x="566" y="266">tight base</text>
  </g>
</svg>
"""

# --------------------------------------------------------------------------------------
# `o2m demo`: the posts' bodies. `](post:SLUG)` is a link to another demo post; the
# writer turns it into the relative .md path, which depends on the years the dates
# fall in.

FIRST_STEPS = """\
Hello! I'm Ada. For years my notes have lived in too many places: recipe cards in a
drawer, trail notes in the margins of maps, code snippets in a file called
`misc2_final.txt`. This site is my attempt to give them one home.

## What to expect

Mostly four things, in no particular order:

- **Walks and hikes**, usually with too many photos of the same hill.
- **Cooking and baking**, including the failures (there will be failures).
- **Programming** -- small tools, things I learned the hard way, the odd rant about
  dates and time zones.
- **Books**, and what they made me think about.

Some posts will be long. Others will be a sentence or two, the kind of thing I'd
otherwise text to a friend.

## Public and not-so-public

Most of what I write here is public. A few posts are just for friends and family --
plans, photos of people who didn't ask to be on the internet, that sort of thing.
Those never appear on the public site; only the people I've added can read them.

## Why not just use a social network?

I've tried. I kept ending up reading things I didn't choose, next to ads for things I
didn't want. A website is slower and quieter, and that's rather the point. As my
grandmother put it when I explained it to her: "So it's a diary, but you leave the
door open."

That's it for now. The kettle's on.
"""

SOURDOUGH_WEEK_ONE = """\
Everyone who bakes sourdough seems to have a jar with a name. I used to find that
slightly ridiculous. Then I spent a week feeding one.

## Day one: flour and water

Every guide I read said the same thing: mix equal weights of flour and water, cover it
loosely, wait. I used 50 g of wholemeal rye and 50 g of lukewarm water, because rye is
said to get things going faster.[^rye] The jar went on the windowsill above the
radiator, the warmest spot in the flat.

## Days two to four: the sulk

Nothing much. A few bubbles on day two, a sour, slightly cheesy smell on day three,
and then -- on day four -- almost nothing at all. This is apparently normal: the first
bacteria to wake up give way, and the yeasts and lactobacilli you actually want take
over. Knowing that didn't stop me checking the jar every hour.

> If your starter looks dead on day four, it isn't. It's thinking.
>
> -- a sticky note on the fridge of my favourite bakery

### The feeding routine

Once a day, at roughly the same time:

1. Throw away all but 50 g of the starter.
2. Add 50 g of flour, half rye and half strong white.
3. Add 50 g of water at about 27 °C.
4. Stir, scrape down the sides, and put a rubber band around the jar at the level.

The rubber band is the best tip I was given. Without it, "has it risen?" is a matter
of opinion; with it, it's a measurement.

### What I got wrong

- I used water straight from the tap on day two. Our water is quite chlorinated, and
  leaving it in a jug overnight seems to have made a difference.
- I fed it twice on day three out of sheer impatience. It didn't help.
- I put the lid on tight. Please don't: it needs to breathe, and you need to not
  clean the ceiling.

## Day seven: Gerald

By day seven it was doubling within six hours of a feed and smelled of yoghurt and
green apples. It had also acquired a name, because apparently I am the kind of person
who names a jar. Gerald it is.

## What's next

Next week: an actual loaf. I'm keeping notes on hydration, timings and temperatures,
so if it works I'll write it up properly -- and if it doesn't, I'll write that up too.

[^rye]: Rye flour carries more wild yeast and enzymes than white flour, and it holds
    water well, so starters made with it tend to wake up sooner.
"""

RIDGEWAY = """\
The Ridgeway is often called Britain's oldest road.[^old] It runs along a chalk
escarpment across the south of England, and for most of its length it is a wide,
grassy track with enormous views and almost no shade. I walked the western half over
three days with my sister Mira, and I'd do it again tomorrow.

![The ridge at dawn, drawn from memory on the train home](ridge.svg)

## Why this walk

I wanted something long enough to feel like a journey but without mountain weather to
worry about. The western Ridgeway fits: the path is easy to follow, the villages below
have places to sleep, and the climbing comes in gentle swells rather than walls.

## Day one: Overton Hill to Ogbourne St George

We started late, after two trains and a bus, so the first day was short on purpose.
The track climbs almost at once onto open downland. Skylarks everywhere -- I'd
forgotten how loud they are. Barbury Castle, an Iron Age hillfort, made a perfect
lunch stop: you sit on the ramparts and see half of Wiltshire.

We dropped down to Ogbourne St George in the late afternoon, tired in the pleasant
way, and ate an unreasonable amount of pie.

### Where we slept

The Ridgeway runs along the top, and the villages sit below it in the valleys, so every
night means a detour: twenty minutes down at the end of the day, twenty minutes back up
in the morning. We stayed in a pub with rooms the first night and a farm B&B the second,
where the owner drove us back up to the path after breakfast and wouldn't hear of being
paid for it. Both were booked weeks ahead; in summer, the beds within reach of the path
go quickly.

### What we ate

Big breakfasts, sandwiches and far too many flapjacks on the trail, and whatever the pub
had in the evening. There are no shops on the ridge itself, so lunch is whatever you
carried up that morning. Mira's rule -- "always one more snack than you think" -- was
correct on all three days.

## Day two: to White Horse Hill

The long day. The path runs along the crest for hours, and the landmarks come one
after another:

- **Liddington Hill**, with its trig point and a bench that has clearly seen a lot of
  sandwiches.
- **Wayland's Smithy**, a Neolithic long barrow under a ring of beech trees. It's cool
  and quiet inside the trees, which felt like a small miracle by midday.
- **The Uffington White Horse**, which you can't really see from on top of it. You
  know it's there; that's the point.

![A rough elevation profile: more up and down than you'd think](elevation.svg)

### A word about water

There is very little of it. We carried two litres each and refilled at a tap near the
halfway point.[^water] In hot weather I'd carry three.

## Day three: down to the Thames

The last day slopes gently east and then, near the end, down to the river at Streatley.
The chalk gives way to fields, then to woods, then to the first proper shade in three
days. After so long in the open, walking under trees felt almost indoor: quieter,
cooler, the sky in pieces overhead. We finished with our feet in the Thames, which I
recommend more than any stretching routine, and caught the train home smelling faintly
of sun cream and river.

## The numbers

| Day | From → To | Distance | Ascent | Best bit |
|----:|-----------|---------:|-------:|----------|
| 1 | Overton Hill → Ogbourne St George | ~15 km | ~250 m | Barbury Castle |
| 2 | Ogbourne St George → White Horse Hill | ~27 km | ~450 m | Wayland's Smithy |
| 3 | White Horse Hill → Streatley | ~30 km | ~300 m | Feet in the Thames |

Distances are from my watch, which has opinions, so treat them as approximate.

## What I'd do differently

1. Start earlier on day two. By three o'clock the chalk reflects the sun straight back
   at you.
2. Book the beds before booking the trains. We were lucky.
3. Bring a proper map as well as the phone. The phone was fine; the map was *better*,
   because you can spread it out on a rampart and argue over it.

[^old]: People have walked this line of chalk for something like five thousand years,
    long before anybody thought of it as a road.
[^water]: There are a few taps along the trail, marked on the National Trail map.
    Check they're working before you rely on them.
"""

BORROW_CHECKER = """\
For my first month with Rust, the borrow checker and I were not friends. I'd write
something that would be perfectly fine in Python, the compiler would say no, and I'd
shuffle `clone()` calls around until it said yes. It worked, in the sense that the
programs ran. It didn't work in the sense that I understood anything.

This is the post I wish I'd read then.

## The fight

Here is the smallest version of the error I kept hitting:

```rust
let mut shelf = vec!["Dune", "Middlemarch"];
let first = &shelf[0];
shelf.push("The Dispossessed"); // error[E0502]: cannot borrow `shelf` as mutable
println!("{first}");
```

In Python this is unremarkable. In Rust, `first` is a reference *into* the vector's
memory, and `push` might need to move the whole vector to a bigger allocation. If it
did, `first` would point at memory that no longer belongs to the vector. Other languages
either make that impossible at runtime (with a garbage collector) or let it crash. Rust
refuses to compile it.

## What finally clicked

I'd read the rules many times. What made them stick was saying them as a sentence
about *people* rather than memory.

### Many readers...

Any number of people can read a book at the same time, as long as nobody is changing
it. That's `&T`: a shared reference. You can hand out as many as you like.

### ...or one writer

If someone is editing the book, nobody else may even read it until they're done,
because they might read half a sentence. That's `&mut T`: a unique reference.

The borrow checker is just checking that, at every point in the program, each value has
either many readers or one writer -- never both.

## A small example, done properly

Once I stopped fighting, the fixes became obvious. If I need the first title *after*
changing the shelf, I should either look it up afterwards or own a copy of it:

```rust
fn main() {
    let mut shelf = vec![String::from("Dune"), String::from("Middlemarch")];
    let first = shelf[0].clone(); // an owned copy: no borrow outlives the push
    shelf.push(String::from("The Dispossessed"));
    println!("{first} is still first; {} books in all", shelf.len());
}
```

And when a function only needs to *look*, it should say so in its signature. This one
borrows the text and returns a slice of it, so the compiler knows the result can't
outlive the input:

```rust
fn longest_word(text: &str) -> &str {
    text.split_whitespace()
        .max_by_key(|word| word.chars().count())
        .unwrap_or("")
}
```

## Lifetimes, briefly

The `&str` in that signature hides a *lifetime*: the compiler reads it as "the result
lives as long as the input". Most of the time it works that out by itself, and you never
write one. When you do have to -- usually in a struct that holds a reference -- it's the
same rule written down: this value must not outlive that one.

What helped me was to stop thinking of lifetimes as something I add to make the compiler
happy, and start thinking of them as documentation it checks for me. A function that
returns a reference into its argument is making a promise. In C, that promise lives in a
comment, if you're lucky. In Rust, it's in the type, and breaking it is a compile error
rather than a crash at two in the morning.

### When not to borrow

Sometimes the right answer is to stop borrowing altogether. If a struct needs to keep
some text around for a long time, give it a `String` rather than a `&str`. It costs a
copy, and it saves a great deal of lifetime bookkeeping. I used to see owned data as the
beginner's option. Now it's often the grown-up one.

## Things that helped

- **Reading the whole error message.** Rust's errors point at *both* borrows and often
  suggest the fix. I'd been skimming the first line.
- **Shorter scopes.** Many borrow errors vanish when a reference is used right away
  instead of being kept in a variable "for later".
- **Cloning without guilt, at first.** A `clone()` is rarely the bottleneck. It's fine
  to get a program working and then notice where the copies actually matter.[^perf]

I still lose the odd argument with the compiler. But now it feels like arguing with a
careful colleague rather than a wall -- and, annoyingly, the colleague is usually right.

[^perf]: When they do matter, a profiler will tell you. Mine has never once pointed at
    a `clone()` of a short `String`.
"""

MISO_SOUP = """\
Some evenings want a proper dinner. Others want something warm in a bowl in ten
minutes, and for those I make 味噌汁 -- *miso shiru*, miso soup.

## What you need (for two)

- 600 ml dashi (出汁). Instant granules are fine; a piece of kombu soaked in cold water
  for an hour is better.
- 2 tablespoons of miso. I like a mix of white (shiro) and red (aka).
- A handful of tofu cubes, silken or firm.
- A small piece of dried wakame, soaked for five minutes.
- One spring onion, sliced thin.

## How

1. Heat the dashi until it's just short of boiling.
2. Add the tofu and the wakame, and let them warm through for a minute.
3. Turn the heat right down. Put the miso in a ladle, lower it into the pot and stir
   it loose with chopsticks until it dissolves.
4. Don't let it boil again -- boiling dulls the flavour and makes the miso grainy.
5. Pour into bowls and scatter the spring onion on top.

## Variations I like

Thin slices of mushroom added with the tofu; a few leaves of spinach at the very end;
a spoonful of leftover rice in the bottom of the bowl, which turns it into a meal. My
friend Kenji says his grandmother would be horrified by that last one. He also asks for
seconds.
"""

SQL_HABIT = """\
A few years ago I deleted rather more rows than I meant to from a production table.
Nobody lost anything important -- we had backups, and I spent an evening learning how
good they were -- but it changed how I write every statement that changes data.

## The habit

Before any `UPDATE` or `DELETE`, I write the same `WHERE` clause as a `SELECT`, inside
a transaction, and I look at the number.

```sql
BEGIN;

-- 1. How many rows will this touch?
SELECT count(*)
FROM orders
WHERE status = 'abandoned'
  AND created_at < now() - interval '90 days';

-- 2. The change itself, with the *same* WHERE clause, copied, not retyped.
DELETE FROM orders
WHERE status = 'abandoned'
  AND created_at < now() - interval '90 days';

-- 3. Does "DELETE n" match the count above? Then COMMIT; otherwise ROLLBACK.
COMMIT;
```

It takes thirty seconds. In those thirty seconds I have caught, among other things, a
missing `AND`, a `<` that should have been `>`, and a table that was not the table I
thought it was.

## Why the transaction matters

Without `BEGIN`, step 2 is final the moment it runs. With it, nothing is visible to
anyone else until I say `COMMIT`, and `ROLLBACK` puts everything back. The `SELECT`
tells me what I *meant*; the transaction gives me a chance to act on what I *see*.

## What I check

| Before running... | I look at... | Because... |
|-------------------|--------------|------------|
| `DELETE` | `count(*)` with the same `WHERE` | the number should not surprise me |
| `UPDATE` | a few rows with old *and* new values | "set everything to NULL" is easy to type |
| a migration | the row count before and after | data should not vanish on its own |
| anything on Friday | whether it can wait until Monday | it can |

## A few smaller habits

- I write the `WHERE` clause *first* and the `DELETE FROM` line last, so an accidental
  Enter runs nothing.
- I keep a `LIMIT` on exploratory queries, even on tables I think are small.
- In scripts, I make the expected count an explicit check, and the script refuses to
  commit if it doesn't match.

None of this is clever. It's a seatbelt: you don't notice it until the day you really,
really do.
"""

WINTER_BOOKS = """\
Short days are good for one thing, at least: long evenings with a book. These are the
ones that got me through this winter, in the order I read them.

## *The Dispossessed*, Ursula K. Le Guin

I'd been told for years that I'd like this, and the people who told me were right. Two
worlds, one rich and one poor, and a physicist who travels from the second to the
first. What stayed with me isn't the politics so much as how *ordinary* daily life is on
both worlds: people cooking, arguing about work, sharing rooms, being kind or
thoughtless in small ways.

> Note to self: the chapters alternate between two times, and it took me four chapters
> to notice. Read the chapter headings.

## *Kitchen*, Banana Yoshimoto

A short novel -- in Japanese, *キッチン* -- that I read in a single evening and then
again the next day. A young woman whose grandmother has died moves in with a friend and
his mother, and finds that the one place she feels at home is the kitchen. It's about
grief, but it's gentle, often funny, and full of food.[^translation]

I don't read Japanese well enough to attempt the original yet, but I did look up the
first sentence and read it aloud, slowly, with a dictionary. It felt like a small
achievement.

## *The Old Ways*, Robert Macfarlane

A book about walking old paths: drove roads, sea routes, tracks across mudflats. It made
me want to pack a bag immediately, which in midwinter is not very practical. I underlined
so much of it that the underlining stopped meaning anything, so instead I kept a list of
places to walk. It is now long enough to last about three lifetimes.

## *A Month in the Country*, J. L. Carr

A slim novel I picked up in a charity shop because of the cover, and finished on the bus
home. A young man back from the First World War spends one summer in a Yorkshire
village, uncovering a medieval painting on a church wall, one square inch at a time.

Not much happens, and all of it matters. It's a book about patience and attention and
the strange way a single summer can stay with you for the rest of your life. I read it
on a dark afternoon, with rain on the windows, and it felt like being handed a warm cup of tea.

> Note to self: lend this to Mum. Then ask for it back. Then actually get it back.

It has gone straight onto the short shelf of books I'll reread every few years.

## What I didn't finish

An 800-page history of the spice trade. It's very good. I'm on page 212. It will still
be there next winter.

## How I read this winter

- **One book at a time**, which is new for me. I usually have five on the go and finish
  none.
- **Paper in the evening, e-reader on the train.** The e-reader's dictionary was
  invaluable for *Kitchen*.
- **A notebook by the sofa** for lines and thoughts. Most of this post comes from it.
- **The library before the bookshop.** Three of these four came from the library or a
  charity shop, and the reservations list turned out to be a wonderful way of finding
  out what my neighbours are reading.

> Reading isn't a race, it's a walk. You're allowed to stop and look at the view.

That's from my notebook too -- me, on a good day. Suggestions for spring are very
welcome.

[^translation]: I read the English translation by Megan Backus, which also includes the
    novella *Moonlight Shadow*.
"""

FILE_WATCHER = """\
I often want "run this command whenever a file changes": rebuild the notes, rerun the
tests, regenerate a chart. There are excellent tools for that. But I wanted to know how
little code it really takes, so I wrote one in plain Python, with no dependencies.

## Why not inotify?

Operating systems can tell you when files change: inotify on Linux, FSEvents on macOS,
ReadDirectoryChangesW on Windows. They're efficient and immediate, and each one has its
own quirks -- editors that save by writing a new file and renaming it, network drives
that never send events, limits on how many folders you can watch.

Polling is cruder: look at every file, wait, look again, compare. It costs a little CPU,
but it works the same everywhere, and for a folder of a few thousand files it is fast
enough that you'll never notice.

## The idea

1. Take a *snapshot*: for every file, its modification time and size.
2. Every half second, take another and compare.
3. When something changed, wait until things are quiet -- editors often write a file in
   several steps -- and then run the command.

## The code

```python
import os
import subprocess
import sys
import time
from pathlib import Path

Snapshot = dict[str, tuple[float, int]]


def snapshot(root: Path) -> Snapshot:
    # path -> (modification time, size) for every file under root,
    # skipping hidden folders such as .git
    found: Snapshot = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue  # deleted while we were looking
            found[path] = (st.st_mtime, st.st_size)
    return found


def changes(old: Snapshot, new: Snapshot) -> list[str]:
    added = new.keys() - old.keys()
    removed = old.keys() - new.keys()
    modified = {p for p in new.keys() & old.keys() if new[p] != old[p]}
    return sorted(added | removed | modified)


def watch(root: Path, command: list[str], interval: float = 0.5) -> None:
    before = snapshot(root)
    while True:
        time.sleep(interval)
        now = snapshot(root)
        if now == before:
            continue
        while True:  # wait for a quiet moment
            time.sleep(interval)
            later = snapshot(root)
            if later == now:
                break
            now = later
        changed, before = changes(before, now), now
        if changed:  # not if a file came and went again
            print(f"{len(changed)} file(s) changed, e.g. {changed[0]}", file=sys.stderr)
            subprocess.run(command)


if __name__ == "__main__":
    watch(Path(sys.argv[1]), sys.argv[2:])
```

### Snapshotting

`os.walk` does the heavy lifting. Editing `dirs` in place is the documented way to stop
it from descending into folders, which keeps it out of `.git` and friends. The `try`
matters more than it looks: files come and go while you're walking.

### Comparing

Comparing two dictionaries with `==` is enough to know *whether* anything changed; the
set arithmetic in `changes` is only there to say *what*. Size and modification time
together catch nearly every real edit.

## Using it

```bash
# rebuild my notes whenever one of them changes
python watch.py notes/ make html

# rerun the tests, quietly
python watch.py src/ python -m pytest -q
```

## Limits

- If the command writes into the folder being watched, it will trigger itself. Watch
  the sources, not the output.
- Modification times on some file systems are only precise to the second, so two edits
  within one second with the same size could slip through. In practice, I've never seen
  it happen while typing.
- It runs the command once per burst of changes, not once per file. That's a feature.

Sixty lines, give or take. It's been running in a terminal tab for a month now, and
I've stopped thinking about it, which is the highest compliment I can pay a tool.
"""

LISBON = """\
Four days in Lisbon, mostly spent walking uphill between cafés. I have no regrets and
very tired calves. ☕

## How to order coffee

- **Uma bica** -- a short, strong espresso. The default.
- **Um galão** -- milky coffee in a tall glass, good with breakfast.
- **Um café cheio** -- an espresso topped up a little. For when you want it to last.

Saying "obrigada" (or "obrigado", depending on who's speaking) goes a long way. So does
not asking for a latte.

## The pastries

*Pastéis de nata*, obviously: crisp, flaky shells and a custard that's just set, still
warm, with cinnamon and icing sugar on the side. I had one every day "for research".
The best came from a tiny bakery near our guesthouse, where the baker was taking trays
out of the oven while the queue watched in respectful silence.

## The streets

Lisbon is built on hills, and the pavements are polished limestone cobbles -- *calçada
portuguesa* -- laid in patterns of waves and ships. They're beautiful and, after rain,
slippery as ice. Wear shoes with grip.

## One small recommendation

Take the tram up in the morning, then walk down in the evening as the light turns gold
and the city smells of grilled sardines. It was the best hour of the trip.
"""

BLUE_HOUR = """\
Blue hour is the short stretch after sunset (or before sunrise) when the sky turns a
deep, even blue and the lights of a town come on. I spent a few evenings this season
trying to photograph it, and mostly learned what not to do.

## 1. It's shorter than you think

Twenty minutes, give or take, and the best five are in the middle. Arrive early, set up,
and take test shots while it's still too bright. By the time it *looks* right, you
should already be taking the pictures.

## 2. A tripod isn't optional

Exposures run to several seconds. I tried bracing the camera on walls, benches and once
a patient friend's shoulder. The tripod won. A cheap, steady one beats an expensive one
left at home because it's heavy.

## 3. Balance the lights, not the sky

The sky takes care of itself. What makes or breaks the picture is the mix of blue sky
and warm windows and street lamps. Too early, the lamps barely show; too late, the sky
goes black and the lamps flare. The sweet spot is when they're about equally bright,
and it doesn't last.

## What I'd tell myself

Pick one place and go back several times instead of chasing new ones. The river bridge
took me four evenings. The fourth picture is the one on my wall.
"""

GARLIC = """\
Planting garlic always feels like an act of faith. You push a clove into cold ground,
cover it up, and then nothing visible happens for months.

## What I did

- Split two bulbs into cloves, keeping the biggest ones for planting. The small ones
  went into dinner.
- Planted them pointy end up, about 15 cm apart and 5 cm deep, in the bed where the
  beans grew this summer.
- Watered them in, and mulched with the last of the leaf mould.

## Why now

Garlic needs a spell of cold to split into cloves properly. Planted in spring, you
often get one big round bulb instead -- tasty, but not the point.

## What happens next

Green shoots by midwinter, if last year is anything to go by, and bulbs to dig up around
midsummer. In between: weeding, and the occasional reassuring look. My neighbour Mr
Okafor, who has grown garlic on the next plot for thirty years, says the secret is "to
forget about it". I'm working on that.
"""

LOAF_ANATOMY = """\
Gerald -- the starter from [my first sourdough post](post:sourdough-week-one) -- is
now the better part of a year old, and I've baked enough loaves to have opinions. This is the
post I'd send to a friend who asked "what am I actually looking at when I cut a loaf
open?"

![Cross-section of a loaf, with the parts labelled](loaf.svg)

## The outside

### The crust

The deep brown comes from the Maillard reaction and caramelisation, which need heat and
a fairly dry surface. That's why most recipes bake with steam for the first twenty
minutes (so the loaf can still expand) and without it for the rest (so the crust can
colour). Pale crust usually means the lid came off too late or the oven wasn't hot
enough.

### The score and the ear

The cut you make just before baking is the *score*. It tells the loaf where to open
as it springs up in the oven. Cut at a shallow angle, and one edge lifts into a ridge
called the *ear*. A good ear is mostly a sign of a well-shaped, well-proofed loaf; it's
also, I admit, very satisfying.

## The inside

### The crumb

Open, irregular holes in the middle, tighter near the base: that's what you usually
want from a high-hydration sourdough. A few notes from my own bakes:

- **Dense and gummy** -- under-proofed, or cut too soon. Wait an hour. I know.
- **One big tunnel under the crust** -- often shaping: air trapped when the dough was
  folded over itself.
- **Even, tiny holes everywhere** -- lower hydration, or lots of handling. Good for
  sandwiches, honestly.

## A timeline that works for me

| Step | When | Notes |
|------|------|-------|
| Feed the starter | 9 pm the night before | 1:5:5 starter:flour:water |
| Mix and autolyse | 9 am | flour and water only, one hour |
| Add starter and salt | 10 am | pinch and fold it in |
| Stretch and folds | 10:30 am -- 12:30 pm | four sets, thirty minutes apart |
| Bulk ferment | until ~3 pm | dough up by half, bubbly at the edges |
| Shape, then fridge | 3 pm -- next morning | the long cold proof builds flavour |
| Bake | 8 am | 250 °C lid on 20 min, 230 °C lid off ~25 min |

Timings drift with the kitchen's temperature: in summer everything runs faster.[^summer]

## The most important step

Letting it cool. The inside keeps cooking as the steam escapes, and a loaf cut hot is
always gummier than the same loaf an hour later. I leave mine on a rack and go for a
walk, which removes the temptation *and* gets me a walk.

[^summer]: In a heatwave, my bulk ferment has been done by noon. Watch the dough, not
    the clock.
"""

GIT_ALIASES = """\
A colleague looked over my shoulder last week, saw me type `git lg`, and asked what
else I'd aliased. It turns out a list of your git aliases is a small, slightly
embarrassing autobiography.

## The aliases

```bash
git config --global alias.st "status --short --branch"
git config --global alias.lg "log --graph --oneline --decorate --all"
git config --global alias.amend "commit --amend --no-edit"
git config --global alias.undo "reset --soft HEAD~1"
git config --global alias.wip "commit -am 'wip: do not push' --no-verify"
git config --global alias.yesterday "log --since=yesterday --author=ada --oneline"
```

## What they say about me

- **`st`** -- I check the status of everything, constantly. Nervous energy.
- **`lg`** -- I like to *see* history. A graph of branches is my idea of a view.
- **`amend`** -- I notice typos half a second after committing.
- **`undo`** -- I commit the wrong thing often enough to need a shortcut for it.
- **`wip`** -- I leave work half-finished at the end of the day, and I'm honest about
  it.
- **`yesterday`** -- I can never remember what I did yesterday when someone asks in the
  morning meeting.

## The one I deleted

I used to have `git yolo` for pushing with `--force`. I removed it after the second time
it did exactly what it said. These days it's `git push --force-with-lease`, typed out in
full, slowly, like a grown-up.
"""

HUT_PACKING = """\
A night in a mountain hut is the best of both worlds: you walk all day with a light
pack, and you sleep under a roof with a hot meal and somebody else's washing-up. The
trick is packing light without forgetting the one thing you'll really need.

## My list, as data

I keep my packing lists as JSON in a folder with a tiny script that prints a checklist.
It's over-engineered. It's also the first list I've ever kept up to date.

```json
{
  "trip": "hut night",
  "pack_litres": 30,
  "wear": ["boots", "merino top", "walking trousers", "sun hat"],
  "carry": {
    "layers": ["fleece", "waterproof jacket", "waterproof trousers", "warm hat", "gloves"],
    "hut": ["sleeping bag liner", "earplugs", "head torch", "hut shoes", "cash"],
    "safety": ["map", "compass", "first aid kit", "whistle", "phone", "power bank"],
    "food": ["lunch", "snacks", "1.5 l water"]
  },
  "leave_behind": ["laptop", "third novel", "optimism about the weather"]
}
```

## The things people forget

### A sleeping bag liner

Most huts provide blankets and ask you to bring a liner -- a thin sleeping bag, really.
Some won't let you in without one.

### Cash

Plenty of huts are off-grid, and "off-grid" often includes the card machine.

### Earplugs

I'll say no more. Dormitories are dormitories.

## What I no longer take

- **A full-size towel.** A small travel towel dries faster and weighs a fifth as much.
- **More than one book.** I never read the second one.
- **Spare everything.** One spare pair of socks, yes. A spare everything else, no.

## Booking

Book ahead in the summer, and ring if you're going to be late: the wardens count
heads at dinner, and a missing walker worries them. Mine was a very kind woman who made
the best lentil soup I've ever eaten, at 2,100 metres, after a long day -- possibly not
the most objective review.
"""

YEAR_OF_NOTEBOOK = """\
This notebook is a year old today. 🎉 When I wrote [my first post](post:first-steps), I
wasn't sure I'd keep going past the first month. It turns out that writing things down
for an audience of mostly friends is exactly the right amount of pressure.

## What I wrote about

More cooking than I expected, and less programming. I think that's because a recipe is
finished when it's eaten, while a program is never finished -- so it's easier to write
about.

## The year in one table

| Category | Winner | Runner-up |
|----------|--------|-----------|
| Longest walk | The Ridgeway, three days | A very wet day in the Peak District |
| Most-baked recipe | Plain sourdough, with Gerald | Focaccia, for guests |
| Most-used git alias | `git st` | `git undo` (don't ask) |
| Best book | *The Dispossessed* | *Kitchen* |
| Best café | A tiny bakery in Lisbon | The station kiosk, on a cold morning |

## What I learned about writing here

### Short is fine

Some of my favourite posts are two sentences long. They're the ones friends reply to
most, too.

### Private posts are the heart of it

The public posts are what a stranger sees, but the friends-only ones -- plans, photos,
small family news -- are why my aunt checks the site every Sunday.

### Nobody minds mistakes

I've mis-measured flour, got a path wrong on a map, and posted code with a bug in it.
Every time, somebody kindly told me, and the post got better.

## Next year

More walks, a bread I haven't tried yet (rye, properly), and maybe a small tool or two
written in Rust. Thank you for reading -- and especially to everyone who wrote back.
"""

DEBOUNCE = """\
Every few months I need a debounce function -- "run this, but only once things have
calmed down" -- and every few months I write it again from memory. So here it is,
written down properly, for future me.

## The simple version

Each call cancels the previous timer and starts a new one. The function only runs when
no call has arrived for `wait` milliseconds.

```javascript
function debounce(fn, wait = 250) {
  let timer = null;
  return function (...args) {
    clearTimeout(timer);
    timer = setTimeout(() => fn.apply(this, args), wait);
  };
}

const search = document.querySelector("#search");
search.addEventListener("input", debounce((event) => {
  runSearch(event.target.value);
}, 300));
```

That's enough for a search box: type "sourdough" quickly and it searches once, not nine
times.

## The version I actually use

Sooner or later I need two more things: *cancel* (the user navigated away, don't bother)
and *flush* (the user pressed Enter, do it now).

```javascript
function debounce(fn, wait = 250) {
  let timer = null;
  let pending = null;

  function debounced(...args) {
    pending = () => fn.apply(this, args);
    clearTimeout(timer);
    timer = setTimeout(debounced.flush, wait);
  }

  debounced.flush = () => {
    clearTimeout(timer);
    const run = pending;
    pending = null;
    if (run) run();
  };

  debounced.cancel = () => {
    clearTimeout(timer);
    pending = null;
  };

  return debounced;
}
```

## Things that have bitten me

- **Arrow functions and `this`.** The returned function must be a normal `function` if
  the callback relies on `this`; an arrow would capture the wrong one.
- **Creating the debounced function inside a render loop.** Then every render gets a
  fresh timer, and nothing is debounced at all. Create it once.
- **Debounce versus throttle.** Debounce waits for quiet; throttle runs at most once
  per interval, even while calls keep coming. For a scroll handler that updates a
  progress bar, you want throttle.
"""

REPLY_SMALL_WEBSITES = """\
Sam wrote a thoughtful post this week asking whether small personal websites still
matter. The gist:

> Nobody reads personal websites any more. The conversation moved elsewhere, and a
> blog without an audience is just a diary with extra steps.

I'd like to disagree, gently, from inside a small personal website.

## A diary with extra steps is a fine thing

The "extra steps" are the point. Writing for *someone* -- even five someones -- makes me
finish my thoughts. My notes app is full of half-sentences; this site is full of whole
ones.

## The conversation didn't move, it split

Yes, the big public conversation happens on big platforms. But the conversations I
actually care about -- with friends, about a walk or a recipe or a bug -- happen in
replies to posts like this one, and in the friends-only posts that never go public at
all. That isn't a smaller version of a social network. It's a different thing, and a
calmer one.

## Audiences aren't numbers

My most-read post has been read by perhaps two hundred people. My most *valued* post was
read by eleven, all of them family, and it's the one my aunt printed out. Both count.

So: yes, Sam, they still matter. Yours does too -- I read it, after all, and here I am
writing back.
"""

PAN_CON_TOMATE = """\
The simplest good thing I know how to cook, learned in a Barcelona kitchen from a friend
who was appalled by the way I'd been doing it.

## The right way (according to Núria)

1. Toast thick slices of good, open-crumbed bread -- sourdough works -- until crisp
   outside but not dry through.
2. Rub a cut clove of garlic over the hot toast. Lightly; it's a whisper, not a shout.
3. Halve a very ripe tomato and rub the cut side hard into the bread until only the skin
   is left in your hand.
4. A generous thread of olive oil, and a pinch of flaky salt.

That's it. No chopping, no bowl, no basil, "and absolutely no mozzarella". I was told
this twice.

## Why it works

Rubbing instead of chopping pushes the tomato pulp *into* the bread, which soaks it up
while the crust stays crisp. It only works with tomatoes at their best: soft, fragrant,
almost too ripe. Which makes it a high-summer dish, and one I now look forward to all
year.
"""

SLOW_READING = """\
This year I tried something I'd been resisting for ages: reading one chapter a day, no
more, of a long book I'd failed to finish twice.

## The rules

- One chapter a day, ideally in the morning with coffee.
- No reading ahead, however tempting the cliffhanger.
- A line or two in a notebook afterwards: what happened, what I noticed.

## What happened

I finished it -- all 74 chapters, in just over ten weeks. More surprising, I remember it.
With one chapter a day, each one gets a day to settle. I found myself thinking about the
characters on the bus, while cooking, on walks. The book became something I lived
alongside rather than something I consumed.

## What I'd change

Some chapters are three pages and some are thirty, so "one chapter" is a blunt unit.
Next time I might try a fixed number of pages instead -- or just accept the unevenness,
like weather.

## Would I recommend it?

For long, slow, rich books: absolutely. For thrillers: you're a stronger person than I
am if you can stop after one chapter.
"""

RUST_ITERATORS = """\
If you write Python, you already think in iterators: `for` loops, comprehensions,
`zip`, `enumerate`, generators. Rust has all of these, under slightly different names,
and once the names line up it feels surprisingly familiar. This is the cheat sheet I
wish I'd had.

## The same idea, two spellings

Take a list of hikes and find the total distance of the long ones.

```python
hikes = [("Ridgeway day 2", 27.0), ("Around the lake", 9.5), ("Kinder Scout", 19.0)]

total = sum(km for name, km in hikes if km > 15)
names = [name.upper() for name, km in hikes if km > 15]
print(total, names)
```

```rust
fn main() {
    let hikes = vec![("Ridgeway day 2", 27.0), ("Around the lake", 9.5), ("Kinder Scout", 19.0)];

    let total: f64 = hikes.iter().filter(|(_, km)| *km > 15.0).map(|(_, km)| km).sum();
    let names: Vec<String> = hikes
        .iter()
        .filter(|(_, km)| *km > 15.0)
        .map(|(name, _)| name.to_uppercase())
        .collect();
    println!("{total} {names:?}");
}
```

The Rust is longer, mostly because it spells out what Python leaves implicit: whether
you borrow (`iter()`) or consume (`into_iter()`) the list, and what collection you want
at the end (`collect()` into a `Vec<String>`).

## A translation table

| Python | Rust | Notes |
|--------|------|-------|
| `for x in xs` | `for x in &xs` | borrow; `for x in xs` would consume `xs` |
| `enumerate(xs)` | `xs.iter().enumerate()` | yields `(index, item)` |
| `zip(a, b)` | `a.iter().zip(b.iter())` | stops at the shorter one, as in Python |
| `[f(x) for x in xs]` | `xs.iter().map(f).collect::<Vec<_>>()` | `collect` needs to know the type |
| `[x for x in xs if p(x)]` | `xs.iter().filter(p)` | `filter` passes a *reference* |
| `any(...)`, `all(...)` | `.any(...)`, `.all(...)` | both stop early |
| `sum(...)`, `max(...)` | `.sum()`, `.max()` | `max` returns an `Option` |
| generator function | `impl Iterator` / `std::iter::from_fn` | see below |

## Laziness

Both languages are lazy in the same way: nothing happens until something asks for the
next item. A Python generator expression and a Rust `map` are both recipes, not
results. In Rust the compiler will even warn you if you build an iterator and never use
it -- "iterators are lazy and do nothing unless consumed".

### Generators

Python's `yield` has no direct equivalent in stable Rust, but `std::iter::from_fn` gets
you most of the way for simple cases:

```rust
fn countdown(from: u32) -> impl Iterator<Item = u32> {
    let mut n = from + 1;
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        n -= 1;
        Some(n)
    })
}
```

For anything with more state, write a small struct and implement `Iterator` for it:
one method, `next`, returning an `Option`. It's more typing than `yield`, but there's
nothing hidden.

## Errors in the middle of a pipeline

In Python, an exception halfway through a comprehension just propagates. Rust has no
exceptions, so a step that can fail returns a `Result` -- and here the type system does
something rather lovely. `collect` can gather an iterator of `Result`s into a `Result`
of a collection: you get either every value, or the first error.

```rust
fn parse_all(lines: &[&str]) -> Result<Vec<f64>, std::num::ParseFloatError> {
    lines.iter().map(|line| line.trim().parse::<f64>()).collect()
}
```

It stops at the first bad line, just like the Python loop would. The difference is that
the signature tells you it can fail, so you can't forget to deal with it.

## What about speed?

A long chain of `filter`, `map` and `sum` in Python builds a small pile of objects and
calls a function per item per step. In Rust, the compiler usually fuses the whole chain
into one tight loop, often as fast as the loop you'd have written by hand -- sometimes
faster, because it can skip bounds checks. So there's no performance reason to avoid the
pipeline style. Write whichever reads better.

## The part that's actually different

Ownership. In Python, iterating over a list never changes who "has" the list. In Rust,
`into_iter()` hands the items over and the list is gone afterwards; `iter()` lends them;
`iter_mut()` lends them for editing. Once I started reading those three as "give",
"show" and "let me fix", most of my compiler errors went away.

Everything else -- chaining, laziness, the joy of a long pipeline that reads top to
bottom -- carries straight over. If you're a Python programmer curious about Rust, I'd
start here rather than with the borrow checker: take a small script that munges some
data, rewrite it as an iterator chain, and let the compiler show you where your
assumptions about ownership were hiding all along.
"""

HOUSEWARMING = """\
We're finally unpacked (well, mostly -- the boxes of books are "decorative" for now),
and we'd love to see you all. Housewarming at the new place on Saturday after next,
from four o'clock until whenever the tea runs out.

The address and door code are in the message I sent round; ring me if you didn't get
it. Parking is easiest on the road behind the church.

Please don't bring anything except yourselves. If you really insist: a plant. We have
a lot of windowsill and not much on it. Kids and dogs very welcome; the garden is small
but fenced.
"""

FAMILY_DINNER = """\
Mum's birthday is on Sunday, and we're doing dinner at ours. Here's the plan so far --
reply here or in the family chat if anything changes.

## When

Sunday, come from half past twelve; food at one.

## Who's bringing what

- **Me:** roast chicken, potatoes, and a big salad.
- **Mira:** pudding. She's threatening a trifle.
- **Tom:** drinks, including the ginger beer Dad likes.
- **Auntie Ros:** her bread rolls, please, if you have time!

## Things to remember

- Dad's still off onions, so I'll keep them out of everything except the gravy, and
  there will be a second gravy.
- Candles for the cake: Mira has them. Do *not* let Mum see the number.
- The card is on the hall table -- sign it when you arrive.
"""

MAPS_DRAFT = """\
*Unfinished -- notes for a post I keep meaning to write.*

## Why I still carry a paper map

- You can see the whole day at once; a phone shows you a postage stamp.
- Contour lines are a language, and I'm slowly learning to read it fluently.
- Batteries.

## Things to include

- The time I navigated off the wrong fold of the map for an hour.
- How to fold a map so it doesn't fight you in the wind (ask Mira -- she has a method).
- Maybe a short bit on grid references? Could be a post of its own.

## Open questions

- Is it worth talking about waterproof map cases, or is that too niche?
- Find the old photo of Grandad's map, the one with pencil routes from the 1970s.
"""

WINTER_LAKE = """\
Up early for once, and out to the lake before sunrise. The water was perfectly still and
steaming in the cold, so the far shore seemed to float on a layer of mist.

## The light

For about ten minutes the sun came in almost flat across the water and turned the
frozen reeds gold. I took far too many pictures of the same reeds. Then the light went
white and ordinary again, as winter light does, and I walked the long way round to warm
up.

## Settings, for the curious

Tripod, low ISO, a small aperture, and a shutter of about half a second, so the mist
smoothed out without blurring the reeds. Gloves with the fingertips cut off -- the best
three pounds I've spent on photography.
"""

# --------------------------------------------------------------------------------------
# `o2m demo`: the post table


@dataclass(frozen=True)
class DemoPost:
    """One demo post; its date is placed relative to `now` when written."""

    slug: str
    days_ago: int  # nominal age; seasonal posts move by whole months (see _ages)
    clock: str | None  # "HH:MM" wall-clock time in the site's zone, or None: a date only
    body: str
    title: str | None = None  # None: a short note
    tags: tuple[str, ...] = ()
    summary: str | None = None
    audience: str = "public"
    draft: bool = False
    reply_to: str | None = None
    updated_after: int | None = None  # days after `date`, for an `updated:` line
    months: tuple[int, ...] = ()  # months it belongs in (frost, tomatoes...); () any
    files: tuple[tuple[str, str], ...] = ()  # page bundle files: (name, text)


# Seasons of the northern hemisphere, for posts that only make sense at some time of year.
WINTER, SPRING, SUMMER, AUTUMN = (12, 1, 2), (3, 4, 5), (6, 7, 8), (9, 10, 11)
FIRST_POST_DAYS_AGO = 535  # ~18 months; seasonal posts are kept after the first post

DEMO_POSTS: tuple[DemoPost, ...] = (
    DemoPost("first-steps", 535, "20:15", FIRST_STEPS, "Hello from a new corner of the web",
             ("meta",), "Why I'm starting a small website of my own, and what will probably "
             "end up on it."),
    DemoPost("choosing-a-font", 528, "08:05", "Turns out the hardest part of starting a "
             "website is choosing a font. I've changed mine four times since breakfast.\n",
             tags=("meta",)),
    DemoPost("sourdough-week-one", 510, "19:40", SOURDOUGH_WEEK_ONE,
             "Sourdough, week one: a starter called Gerald", ("baking",),
             "Flour, water, patience, and a jar on the windowsill that I've somehow named."),
    DemoPost("frosty-fence-posts", 498, "07:20", "Frost on every fence post this morning, and "
             "the path crunched all the way up the hill. Cold fingers, warm heart, hot tea at "
             "the top.\n", tags=("hiking",), months=(11, 12, 1, 2, 3)),
    DemoPost("the-ridgeway-in-three-days", 480, "18:30", RIDGEWAY,
             "Three days on the Ridgeway", ("hiking", "travel"),
             "Chalk, skylarks, a Neolithic barrow and very little shade: walking the western "
             "half of Britain's oldest road.", updated_after=3, months=SUMMER,
             files=(("ridge.svg", RIDGE_SVG), ("elevation.svg", ELEVATION_SVG))),
    DemoPost("gerald-doubled", 470, "12:10", "Gerald the sourdough starter doubled in four "
             "hours today. I'm unreasonably proud of a jar of flour paste.\n",
             tags=("baking",)),
    DemoPost("learning-to-love-the-borrow-checker", 455, "21:00", BORROW_CHECKER,
             "Learning to love the borrow checker", ("programming", "rust"),
             "Many readers or one writer: the sentence that finally made Rust's borrowing "
             "rules click for me."),
    DemoPost("miso-soup", 440, "19:05", MISO_SOUP, "Miso soup for a grey evening",
             ("cooking",), "Ten minutes, one pot, and a bowl of something warm."),
    DemoPost("smaller-diff", 425, "17:45", "Finished a 400-line refactor and the diff is "
             "-212 lines. The best kind of afternoon.\n"),
    DemoPost("a-small-sql-habit", 410, "09:30", SQL_HABIT,
             "A small SQL habit that saves me every week", ("programming",),
             "SELECT before you DELETE, inside a transaction. Thirty seconds, every time."),
    DemoPost("books-of-winter", 395, "16:20", WINTER_BOOKS,
             "Books that got me through the winter", ("books",), months=(2, 3)),
    DemoPost("fog-in-the-valley", 380, "08:40", "Fog in the valley so thick the hills looked "
             "like islands. Didn't bring the camera, of course.\n", tags=("photography",),
             months=AUTUMN),
    DemoPost("a-file-watcher-in-sixty-lines", 365, "22:10", FILE_WATCHER,
             "A file watcher in sixty lines of Python", ("programming", "python"),
             "Polling, snapshots and a quiet period: a dependency-free way to rerun a "
             "command when files change."),
    DemoPost("git-stash-is-not-a-todo-list", 350, "18:55", "Reminder to self: "
             "`git stash list` is not a to-do list. Seventeen entries. Some from last year.\n",
             tags=("programming",)),
    DemoPost("cafe-notes-from-lisbon", 340, "15:00", LISBON, "Café notes from Lisbon",
             ("travel", "cooking"), months=SPRING),
    DemoPost("first-swift", 310, "19:30", "First swift of the year screaming over the "
             "allotment 🐦 -- summer's on its way.\n", tags=("garden",), months=(5,)),
    DemoPost("three-lessons-from-blue-hour", 300, "21:15", BLUE_HOUR,
             "Three things I learned photographing at blue hour", ("photography",),
             months=AUTUMN),
    DemoPost("planting-garlic", 280, "14:30", GARLIC, "Planting garlic, and other acts of faith",
             ("garden",), months=AUTUMN),
    DemoPost("too-much-soup", 260, "20:00", "Made too much soup again. The neighbours have "
             "started to expect it, which I think is what people mean by community.\n"),
    DemoPost("the-anatomy-of-a-loaf", 250, "10:45", LOAF_ANATOMY, "The anatomy of a loaf",
             ("baking",), "Crust, score, ear and crumb: what you're looking at when you cut "
             "a sourdough loaf open, and what it tells you.",
             files=(("loaf.svg", LOAF_SVG),)),
    DemoPost("what-my-git-aliases-say-about-me", 225, "13:20", GIT_ALIASES,
             "What my git aliases say about me", ("programming",)),
    DemoPost("packing-for-a-hut-night", 200, "18:00", HUT_PACKING,
             "Packing for a night in a mountain hut", ("hiking",),
             "Light pack, warm bed, somebody else's washing-up -- and the three things "
             "everybody forgets."),
    DemoPost("bath-reading", 190, "22:40", "Read in the bath until the water went cold. "
             "Zero regrets; it was a very good chapter.\n"),
    DemoPost("a-year-of-this-notebook", 170, "20:30", YEAR_OF_NOTEBOOK,
             "A year of this notebook", ("meta",), updated_after=2),
    DemoPost("a-debounce-i-keep-rewriting", 150, "11:15", DEBOUNCE,
             "A debounce function I keep rewriting", ("programming", "javascript"),
             "The five-line version, the version with cancel and flush, and the mistakes "
             "in between."),
    DemoPost("fast-dough", 140, "16:50", "Hot enough today that the dough proved in forty "
             "minutes. The bread was great; the kitchen was not.\n", tags=("baking",),
             months=SUMMER),
    DemoPost("re-do-small-websites-still-matter", 130, "21:30", REPLY_SMALL_WEBSITES,
             "Re: do small websites still matter?", ("meta",),
             reply_to="https://example.org/2026/some-post/"),
    DemoPost("pan-con-tomate", 115, "13:00", PAN_CON_TOMATE, "Pan con tomate, properly",
             ("cooking",), months=SUMMER),
    DemoPost("slow-reading", 95, None, SLOW_READING, "Slow reading: one chapter a day",
             ("books",), "Ten weeks, seventy-four chapters, and a book I finally finished."),
    DemoPost("rust-iterators-for-python-people", 75, "20:45", RUST_ITERATORS,
             "Rust iterators for Python people", ("programming", "rust", "python"),
             "zip, enumerate, comprehensions and generators, translated -- plus the one "
             "part that really is different."),
    DemoPost("housewarming", 60, "17:30", HOUSEWARMING, "Housewarming: you're all invited",
             audience="friends"),
    DemoPost("le-guin-on-the-train", 50, "18:20", "A stranger on the train asked what I was "
             "reading, and we talked about Le Guin all the way home. Best commute in months.\n",
             tags=("books",)),
    DemoPost("winter-light-on-the-lake", 40, "09:10", WINTER_LAKE, "Winter light on the lake",
             ("photography", "hiking"), months=WINTER),
    DemoPost("notes-toward-a-post-about-maps", 20, None, MAPS_DRAFT,
             "Notes toward a post about maps", ("hiking",), draft=True),
    DemoPost("family-dinner", 9, "21:05", FAMILY_DINNER, "Family dinner plans for Mum's birthday",
             audience="friends"),
    DemoPost("new-boots", 5, "19:15", "New boots arrived. Breaking them in with laps of the "
             "block, like a very determined dog walker without the dog.\n", tags=("hiking",)),
)

_POST_LINK = re.compile(r"\]\(post:([\w-]+)\)")
_PLAIN_YAML = re.compile(r"[^\W\d_][\w .,!?'()–—-]*")
_YAML_WORDS = frozenset({"yes", "no", "true", "false", "on", "off", "null", "y", "n"})


def _yaml_text(value: str) -> str:
    """A YAML scalar for `value`: bare when that reads unambiguously as text (nicer to
    read and edit), else a double-quoted string (JSON's form is valid YAML)."""
    if _PLAIN_YAML.fullmatch(value) and not value.endswith(" ") \
            and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value, ensure_ascii=False)


def _front_matter(*, title: str | None = None, date: str, updated: str | None = None,
                  tags: list[str] | tuple[str, ...] = (), summary: str | None = None,
                  audience: str | None = None, draft: bool = False,
                  reply_to: str | None = None) -> str:
    """The `---` block, fields in the order a person would write them."""
    lines = ["---"]
    if title is not None:
        lines.append(f"title: {_yaml_text(title)}")
    lines.append(f"date: {date}")
    if updated is not None:
        lines.append(f"updated: {updated}")
    if tags:
        lines.append(f"tags: [{', '.join(tags)}]")
    if summary is not None:
        lines.append(f"summary: {_yaml_text(summary)}")
    if audience is not None:
        lines.append(f"audience: {audience}")
    if draft:
        lines.append("draft: true")
    if reply_to is not None:
        lines.append(f"reply_to: {reply_to}")
    lines.append("---")
    return "\n".join(lines) + "\n"


def _seasonal_candidates(days_ago: int) -> Iterator[int]:
    """Ages to try for a seasonal post, nearest first: whole months earlier or later
    (a month is ~30.44 days), each nudged by up to three days."""
    for months in range(13):
        for sign in (-1, 1):
            for nudge in (0, 1, -1, 2, -2, 3, -3):
                yield days_ago + sign * round(months * 30.44) + nudge


def _ages(today: dt.date) -> dict[str, int]:
    """Each post's age in days (slug -> days before `today`).

    A post's nominal age, except for seasonal posts (frost, tomatoes, winter reading):
    those move by whole months into one of their months, so the demo never shows frost
    in July. Whole months keep the day of the month, so moved posts stay spread out
    instead of piling up on the edge of a season; a nudge of a day or two keeps them off
    days that already have a post. All stay between yesterday and the first post.
    """
    ages = {post.slug: post.days_ago for post in DEMO_POSTS if not post.months}
    taken = set(ages.values())
    for post in DEMO_POSTS:
        if post.months:
            ages[post.slug] = next(
                days for days in _seasonal_candidates(post.days_ago)
                if 1 <= days < FIRST_POST_DAYS_AGO and days not in taken
                and (today - dt.timedelta(days=days)).month in post.months)
            taken.add(ages[post.slug])
    return ages


def _stamp(day: dt.date, clock: str | None) -> str:
    """ISO 8601 without a zone: a wall-clock time in the site's time zone, so a post
    written "at 07:20" reads 07:20 whichever machine ran `o2m demo`."""
    if clock is None:
        return day.isoformat()
    hour, minute = (int(part) for part in clock.split(":"))
    return dt.datetime.combine(day, dt.time(hour, minute)).isoformat(timespec="seconds")


def _link_posts(body: str, source: str, sources: dict[str, str]) -> str:
    """Turn `](post:SLUG)` into a relative link to that post's .md file, as a person
    would write it; the builder turns such links into links to the post's page."""
    here = posixpath.dirname(source)
    return _POST_LINK.sub(lambda m: f"]({posixpath.relpath(sources[m.group(1)], here)})", body)


def write_demo_site_content(content_dir: Path, now: dt.datetime) -> int:
    """Write the demo's posts (and bundle images) under `content_dir`; return how many
    post files were written.

    Dates fall in the ~18 months before `now` (taken as a date in `now`'s own zone).
    Existing files of the same names are overwritten: `o2m demo` starts from a fresh
    folder. Deterministic: the same `now` gives the same files.
    """
    today = now.date()
    ages = _ages(today)
    sources: dict[str, str] = {}  # slug -> content-relative path of its .md file
    for post in DEMO_POSTS:
        year = f"{(today - dt.timedelta(days=ages[post.slug])).year:04d}"
        sources[post.slug] = (f"{year}/{post.slug}/index.md" if post.files
                              else f"{year}/{post.slug}.md")

    for post in DEMO_POSTS:
        day = today - dt.timedelta(days=ages[post.slug])
        updated = None
        if post.updated_after is not None:
            age = max(ages[post.slug] - post.updated_after, 1)
            updated = _stamp(today - dt.timedelta(days=age), post.clock)
        source = sources[post.slug]
        body = _link_posts(post.body, source, sources)
        text = _front_matter(
            title=post.title, date=_stamp(day, post.clock), updated=updated, tags=post.tags,
            summary=post.summary, audience=post.audience, draft=post.draft,
            reply_to=post.reply_to,
        ) + "\n" + body
        path = content_dir / source
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        for name, data in post.files:
            (path.parent / name).write_text(data, encoding="utf-8")
    return len(DEMO_POSTS)
