"""The handles no texter may take: the words someone impersonating Kabootar or its operators
would want, the site's own paths, and every command word in every language (a texter named
`@stop` or `@فراموشم-کن` would make commands ambiguous). One list; `handles.is_valid`
compares by confusable skeleton, so `@аdmin` (Cyrillic а) and `@adm1n` are refused too.

`tests/test_abuse_identity.py` checks that every word of `gateway/commands/words.py` is
here: a word added there must be added here.
"""

from __future__ import annotations

# Refused anywhere in a handle, as a part between "-" or "_" that starts with them
# (`@kabootar-support`, `@admin2`, `@official_news`) or, for the names of the service and
# its provider, anywhere at all (`@thekabootar`).
AUTHORITY = (
    "admin",
    "kabootar",
    "moderator",
    "official",
    "staff",
    "support",
    "twilio",
    "کبوتر",  # kabootar
    "مدیر",  # admin, manager (fa, ar)
    "ادمین",  # admin (fa)
    "پشتیبانی",  # support (fa)
    "رسمی",  # official (fa)
    "رسمي",  # official (ar)
    "مشرف",  # moderator (ar)
)
BRANDS = ("kabootar", "twilio")

# Refused as a whole handle (separators ignored: `forget-me`, `forget_me`, `forgetme`).
WORDS = (
    # Who would seem to speak for the service.
    "administrator",
    "android",
    "bot",
    "contact",
    "help",
    "helpdesk",
    "info",
    "mod",
    "news",
    "operator",
    "ops",
    "owner",
    "root",
    "security",
    "service",
    "sms",
    "system",
    "team",
    "verified",
    "اخبار",  # news (fa)
    "خبر",  # news (fa)
    "راهنما",  # help (fa)
    "ناظر",  # moderator (fa)
    "أخبار",  # news (ar)
    "الدعم",  # support (ar)
    "ادارة",  # administration (ar)
    # The site's own paths.
    "api",
    "dev",
    "feed",
    "ops",
    "posts",
    "tags",
    "www",
    # Every command word (gateway/commands/words.py), in every language.
    *("HELP", "INFO", "راهنما", "کمک", "مساعدة", "مساعده", "معلومات"),
    *("FOLLOW", "F", "دنبال", "تابع", "متابعة"),
    *("UNFOLLOW", "LEAVE", "لغو دنبال", "لغودنبال", "دنبال نکن"),
    *("الغاء المتابعة", "الغاء متابعة", "الغ المتابعة"),
    *("GET", "آخرین", "بگیر", "آخر", "هات"),
    *("WHOIS", "کیست", "کیه", "من هو", "منهو"),
    *("NAME", "تغییر نام", "تغییرنام", "تغيير الاسم", "الاسم"),
    *("BIO", "بیو", "درباره من", "بايو", "نبذة"),
    *("OFF", "خاموش", "ايقاف مؤقت", "اطفاء"),
    *("ON", "روشن", "تشغيل"),
    *("DELETE", "حذف", "پاک کن", "امسح"),
    *("STATS", "آمار", "احصائيات", "إحصاءات"),
    *("FORGET ME", "فراموشم کن", "فراموشم کنید", "انسني", "انساني"),
    *("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
    *("توقف", "لغو", "لغو عضویت", "الغاء", "ايقاف", "الغاء الاشتراك"),
    *("START", "YES", "UNSTOP", "شروع", "ادامه", "ابدأ", "ابدا", "بدء"),
    *("D", "DM", "پیام", "خصوصی", "رسالة", "خاص"),
)
