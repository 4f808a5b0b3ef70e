"""The microblog texts become: posts, timelines, texters and their handles, follows."""
