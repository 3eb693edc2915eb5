"""Small fixed values several tests share."""

from __future__ import annotations

BOB_PK = "NYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlQ"


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2b3a8e50000000049454e44ae426082")
