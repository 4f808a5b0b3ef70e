"""What Kabootar texts back, in English, Persian and Arabic.

Each answer fits two SMS segments (`tests/test_commands.py` checks every one with long
handles): 306 GSM-7 characters in English, only 134 UCS-2 ones in Persian and Arabic,
so those are terse. Messages that carry someone's words (a followed post, a reply, a
direct message) are not here: they are the words, prefixed with a handle, in any
language (see `fanout.post_sms`).
"""

from __future__ import annotations

from gateway import segments

MAX_SEGMENTS = 2

TEXTS: dict[str, dict[str, str]] = {
    "welcome": {
        "en": "Welcome to Kabootar! You are @{handle}. Anything you text is posted publicly. "
        "Text HELP for commands. FORGET ME erases you (after you confirm with YES).",
        "fa": "به کبوتر خوش آمدید! شما @{handle} هستید. هر متن شما عمومی منتشر می‌شود. فرمان‌ها: راهنما. "
        "پاک‌شدن: فراموشم کن+بله",
        "ar": "أهلاً بك في كبوتر! أنت @{handle}. كل ما ترسله يُنشر للعموم. للأوامر: مساعدة. "
        "للمحو: انسني ثم نعم",
    },
    "help": {
        "en": "Kabootar: any text is a public post. @name text: reply. D @name text: private. "
        "FOLLOW or UNFOLLOW @name/#tag. GET @name. WHOIS @name. NAME newname. BIO text. "
        "OFF/ON. DELETE. STATS. FORGET ME (then YES to confirm). STOP.",
        # Persian and Arabic have 134 characters for two segments: the list alone.
        "fa": "@نام متن=پاسخ. D @نام متن=خصوصی. دنبال/لغو دنبال @نام #برچسب. آخرین/کیست @نام. "
        "تغییر نام/بیو. خاموش/روشن/حذف/آمار. فراموشم کن+بله/توقف",
        "ar": "@اسم نص=رد. D @اسم نص=خاص. تابع/الغاء المتابعة @اسم #وسم. آخر/من هو @اسم. "
        "الاسم. بايو. اطفاء/تشغيل. حذف. احصائيات. انسني+نعم. توقف",
    },
    "did_you_mean": {
        "en": "Not posted: your text starts with the command {word}. To run it, text {word} alone. "
        'To post your text, send it again starting with a quote mark (").',
        "fa": "منتشر نشد: متن با فرمان «{word}» شروع می‌شود. برای اجرا فقط «{word}» بفرستید. "
        "برای انتشار، متن را با « آغاز کنید.",
        "ar": "لم يُنشر: نصك يبدأ بالأمر «{word}». لتنفيذه أرسل «{word}» وحده. لنشره ابدأه بعلامة «",
    },
    "did_you_mean_usage": {
        "en": "Not posted: your text starts with the command {word}. {usage} "
        'To post your text, send it again starting with a quote mark (").',
        "fa": "منتشر نشد: متن با فرمان «{word}» شروع می‌شود. {usage} برای انتشار، با « آغاز کنید.",
        "ar": "لم يُنشر: نصك يبدأ بالأمر «{word}». {usage} لنشره ابدأه بعلامة «",
    },
    "forget_ask": {
        "en": "FORGET ME erases your number, posts, follows and messages for good. To go ahead, "
        "reply YES within {minutes} minutes. Any other reply cancels.",
        "fa": "فراموشم کن شماره، پست‌ها و دنبال‌شده‌های شما را برای همیشه پاک می‌کند. "
        "برای تأیید تا {minutes} دقیقه «بله» بفرستید؛ پاسخ دیگر لغو می‌کند.",
        "ar": "انسني يمحو رقمك ومنشوراتك ومتابعاتك نهائياً. للتأكيد أرسل «نعم» خلال {minutes} دقائق؛ "
        "أي رد آخر يلغي.",
    },
    "forget_cancelled": {
        "en": "FORGET ME cancelled: nothing was erased.",
        "fa": "فراموشم کن لغو شد؛ چیزی پاک نشد.",
        "ar": "أُلغي انسني؛ لم يُمحَ شيء.",
    },
    "forget_cancelled_unposted": {
        "en": "FORGET ME cancelled: nothing was erased, and your text was taken as the answer, "
        "not posted. Send it again to post it.",
        "fa": "فراموشم کن لغو شد؛ چیزی پاک نشد و متن شما منتشر نشد. برای انتشار دوباره بفرستید.",
        "ar": "أُلغي انسني؛ لم يُمحَ شيء ولم يُنشر نصك. أعد إرساله لنشره.",
    },
    "forget_expired": {
        "en": "Nothing was erased: FORGET ME waits {minutes} minutes for YES. To be erased, "
        "text FORGET ME again.",
        "fa": "چیزی پاک نشد: فراموشم کن فقط {minutes} دقیقه منتظر «بله» است. دوباره «فراموشم کن» بفرستید.",
        "ar": "لم يُمحَ شيء: انسني ينتظر «نعم» {minutes} دقائق فقط. أرسل «انسني» من جديد.",
    },
    "reply_usage": {
        "en": "To reply, write your message after the name: @{handle} your reply",
        "fa": "برای پاسخ، متن را بعد از نام بنویسید: @{handle} متن",
        "ar": "للرد اكتب رسالتك بعد الاسم: @{handle} نص",
    },
    "dm_usage": {
        "en": "To send a private message: D @name your message",
        "fa": "برای پیام خصوصی: D @نام متن",
        "ar": "لرسالة خاصة: D @اسم نص",
    },
    "follow_usage": {
        "en": "Follow whom? FOLLOW @name or FOLLOW #tag",
        "fa": "دنبال چه کسی؟ دنبال @نام یا دنبال #برچسب",
        "ar": "متابعة من؟ تابع @اسم أو تابع #وسم",
    },
    "unfollow_usage": {
        "en": "Unfollow whom? UNFOLLOW @name or UNFOLLOW #tag",
        "fa": "لغو دنبال چه کسی؟ لغو دنبال @نام یا #برچسب",
        "ar": "إلغاء متابعة من؟ الغاء المتابعة @اسم أو #وسم",
    },
    "get_usage": {
        "en": "Whose latest post? GET @name",
        "fa": "آخرین پست چه کسی؟ آخرین @نام",
        "ar": "آخر منشور لمن؟ آخر @اسم",
    },
    "whois_usage": {"en": "Who? WHOIS @name", "fa": "چه کسی؟ کیست @نام", "ar": "من؟ من هو @اسم"},
    "name_usage": {
        "en": "Choose a new name: NAME newname",
        "fa": "نام تازه را بنویسید: تغییر نام نام‌تازه",
        "ar": "اختر اسماً جديداً: الاسم اسم_جديد",
    },
    "no_such_handle": {
        "en": "No one here is called @{handle}.",
        "fa": "کسی با نام @{handle} اینجا نیست.",
        "ar": "لا أحد هنا باسم @{handle}.",
    },
    "not_posted": {
        "en": "No one here is called @{handle}, so your text was not posted.",
        "fa": "کسی با نام @{handle} نیست؛ متن شما منتشر نشد.",
        "ar": "لا أحد باسم @{handle}؛ لم يُنشر نصك.",
    },
    # The one SMS a blocked texter gets (pipeline/blocks.py): true, and no hint of a block.
    "held": {
        "en": "Kabootar could not take your text.",
        "fa": "کبوتر نتوانست متن شما را بپذیرد.",
        "ar": "لم يستطع كبوتر قبول رسالتك.",
    },
    "followed": {
        "en": "You follow {targets} now: new posts come to you by SMS.",
        "fa": "اکنون {targets} را دنبال می‌کنید: پست‌های تازه پیامک می‌شوند.",
        "ar": "أنت تتابع {targets} الآن: تصلك المنشورات الجديدة برسالة.",
    },
    "follow_self": {
        "en": "You cannot follow yourself.",
        "fa": "نمی‌توانید خودتان را دنبال کنید.",
        "ar": "لا يمكنك متابعة نفسك.",
    },
    "unfollowed": {
        "en": "You no longer follow {targets}.",
        "fa": "دیگر {targets} را دنبال نمی‌کنید.",
        "ar": "لم تعد تتابع {targets}.",
    },
    "no_posts": {
        "en": "@{handle} has not posted yet.",
        "fa": "@{handle} هنوز پستی ندارد.",
        "ar": "@{handle} لم ينشر بعد.",
    },
    "whois": {
        "en": "@{handle}: {bio} Posts: {posts}. Followers: {followers}.",
        "fa": "@{handle}: {bio} پست: {posts}. دنبال‌کننده: {followers}.",
        "ar": "@{handle}: {bio} منشورات: {posts}. متابعون: {followers}.",
    },
    "no_bio": {"en": "(no bio)", "fa": "(بدون بیو)", "ar": "(بلا نبذة)"},
    "renamed": {
        "en": "You are @{handle} now.",
        "fa": "اکنون نام شما @{handle} است.",
        "ar": "اسمك الآن @{handle}.",
    },
    "name_same": {
        "en": "You are @{handle} already.",
        "fa": "نام شما همین حالا @{handle} است.",
        "ar": "اسمك @{handle} بالفعل.",
    },
    "name_too_often": {
        "en": "You changed your name too often lately. Try again in a few weeks.",
        "fa": "اخیراً نام خود را بیش از حد تغییر داده‌اید. چند هفته دیگر دوباره امتحان کنید.",
        "ar": "غيّرت اسمك كثيراً مؤخراً. حاول مجدداً بعد بضعة أسابيع.",
    },
    "name_taken": {
        "en": "@{handle} is taken. Try another: NAME newname",
        "fa": "@{handle} گرفته شده است. نام دیگری بفرستید.",
        "ar": "@{handle} محجوز. جرّب اسماً آخر.",
    },
    "name_invalid": {
        "en": "A name has 2-30 letters or digits, with - or _ inside, and is not reserved. Try: NAME newname",
        "fa": "نام ۲ تا ۳۰ حرف یا رقم است، با - یا _ در میان. نام دیگری بفرستید.",
        "ar": "الاسم من 2 إلى 30 حرفاً أو رقماً، مع - أو _ في الوسط. جرّب اسماً آخر.",
    },
    "bio_saved": {"en": "Bio saved.", "fa": "بیو ذخیره شد.", "ar": "حُفظت النبذة."},
    "bio_show": {
        "en": "Your bio: {bio} To change it: BIO new text",
        "fa": "بیوی شما: {bio} برای تغییر: بیو متن تازه",
        "ar": "نبذتك: {bio} للتغيير: بايو نص جديد",
    },
    "bio_empty": {
        "en": "You have no bio. To set one: BIO a few words about you",
        "fa": "بیو ندارید. برای نوشتن: بیو چند کلمه درباره شما",
        "ar": "ليست لديك نبذة. لكتابتها: بايو كلمات عنك",
    },
    "paused": {
        "en": "Paused: no SMS from Kabootar until you text ON. You can still post.",
        "fa": "پیامک‌ها متوقف شد تا «روشن» بفرستید. همچنان می‌توانید پست بگذارید.",
        "ar": "أوقفنا الرسائل حتى ترسل «تشغيل». ما زال بإمكانك النشر.",
    },
    "resumed": {
        "en": "SMS from Kabootar are on again.",
        "fa": "پیامک‌های کبوتر دوباره روشن شد.",
        "ar": "عادت رسائل كبوتر.",
    },
    "deleted": {
        "en": 'Deleted your latest post: "{start}"',
        "fa": "آخرین پست شما حذف شد: «{start}»",
        "ar": "حُذف آخر منشور لك: «{start}»",
    },
    "nothing_to_delete": {
        "en": "You have no posts to delete.",
        "fa": "پستی برای حذف ندارید.",
        "ar": "ليس لديك منشورات لحذفها.",
    },
    "stats": {
        "en": "Followers: {followers}. Following: {users} people, {tags} tags. Posts: {posts}.",
        "fa": "دنبال‌کننده: {followers}. دنبال‌شده: {users} نفر، {tags} برچسب. پست: {posts}.",
        "ar": "متابعون: {followers}. تتابع: {users} شخصاً و{tags} وسماً. منشورات: {posts}.",
    },
    "stopped": {
        "en": "You will get no more SMS from Kabootar. Text START to come back.",
        "fa": "دیگر پیامکی از کبوتر نمی‌گیرید. برای بازگشت: شروع",
        "ar": "لن تصلك رسائل من كبوتر. للعودة أرسل: ابدأ",
    },
    "started": {
        "en": "Welcome back: SMS from Kabootar are on. Text HELP for commands.",
        "fa": "خوش برگشتید: پیامک‌های کبوتر روشن است. فرمان‌ها: راهنما",
        "ar": "أهلاً بعودتك: رسائل كبوتر مفعّلة. للأوامر: مساعدة",
    },
    "dm_sent": {
        "en": "Sent privately to @{handle}.",
        "fa": "پیام خصوصی برای @{handle} فرستاده شد.",
        "ar": "أُرسلت رسالتك الخاصة إلى @{handle}.",
    },
    "dm_undelivered": {
        "en": "Your private message to @{handle} was not delivered: they are not receiving messages now.",
        "fa": "پیام خصوصی شما به @{handle} نرسید: او اکنون پیامی دریافت نمی‌کند.",
        "ar": "لم تصل رسالتك الخاصة إلى @{handle}: لا يستقبل الرسائل الآن.",
    },
    "dm_self": {
        "en": "You cannot send a private message to yourself.",
        "fa": "نمی‌توانید به خودتان پیام خصوصی بفرستید.",
        "ar": "لا يمكنك إرسال رسالة خاصة إلى نفسك.",
    },
    "dm_limit": {
        "en": "Not sent: you can send {most} private messages an hour. Try again later.",
        "fa": "فرستاده نشد: در هر ساعت {most} پیام خصوصی می‌توانید بفرستید. بعداً دوباره بفرستید.",
        "ar": "لم تُرسل: يمكنك إرسال {most} رسالة خاصة في الساعة. حاول لاحقاً.",
    },
    "tag_too_long": {
        "en": "A #tag has at most {most} characters: #{tag}… was not followed.",
        "fa": "برچسب حداکثر {most} نویسه دارد: #{tag}… دنبال نشد.",
        "ar": "الوسم {most} حرفاً على الأكثر: لم تتم متابعة #{tag}…",
    },
    "follow_limit": {
        "en": "You follow {most} people and tags, the most allowed: UNFOLLOW some first.",
        "fa": "شما {most} نفر و برچسب را دنبال می‌کنید که بیشترین مجاز است. اول چندتا را لغو دنبال کنید.",
        "ar": "تتابع {most} شخصاً ووسماً، وهو الحد الأقصى. ألغِ متابعة بعضها أولاً.",
    },
}


def render(key: str, language: str | None, **fields: object) -> str:
    """The answer `key` in `language` (English when it has no such version), filled in."""
    versions = TEXTS[key]
    text = versions.get(language or "en") or versions["en"]
    return text.format(**fields)


def fit(text: str) -> str:
    """An answer cut to MAX_SEGMENTS, as a safety net for long names and lists."""
    return segments.truncate(text, MAX_SEGMENTS)
