"""Which language a text is written in, and which region a locale tag names.

Pure functions of strings (no Babel, no data files): the policy's rules for an intake
that carries no locale or no zone (`workflows.policy.reader_locale`,
`region_time_zone`) are built on them, and they run wherever an intake is opened,
workflow code included.
"""

from __future__ import annotations

import re

# Characters of everyday customer-service Chinese that differ between the scripts, as
# aligned pairs (Simplified above, Traditional below). Which script a text is in is
# told by which of the two sets it uses more; characters both scripts share say nothing.
# Left out on purpose: forms that Traditional text also uses in other words (台 里 干 只
# 系 准 云 余 游 松 范 几 冲 征 表 出 著 乾 后), which would misread a Taiwanese message.
_PAIRS = (
    (
        "们这个为么说会来时对开关问题号码账户钱现无录验证单订买卖还进过发边话认识让请谢设讯记"
        "论该语误读调谁详评试询诉计钟银错锁链键网络线级红给经结统终续纸组细练约纪页顾预领频"
        "额顺东车转软输载轮贝费资货质购贵赔贴赚负责败门闭间闻见规视觉览马骗鱼鸟动务办头实宝"
        "长区医华国图园团块坏场处备复够将专导层岁币师帐广应废总态惯扫护报担拥换据损摄数断显"
        "书条极构标样机权检欢气没汇满测济点热灵爱独环电画疗盘确礼离种称积穷笔签类罗义习职联"
        "胜脑与节药虑补装观触赶跃达运远选递迟邮释钮阅队阶际陆险难须风饭体丢两严丰临乐乱争亏"
        "产亲亿仅从价众优传伤兑养册写军农冻减凭刘则刚创删别劳势卫压历厅县参双变启员响哑圆声"
        "夺奋妇孙宁审宽寻尽属岛带帮库异弃张弹彻忆怀恶恼悬惊执扩扰抢挂择挤挥摆敌旧晓暂术杀杂"
        "枪档桥梦欧毕汤沟浅润涨渐温灯炼烦烧状犹猪献畅盖监硕础祸竞筑简粮紧纳纵织绍绝绩维综编"
        "缓缩罚肃肠肤胁脚举舰艺苏荐获营萧蓝虽蚀袭讨议讲许访诈诊词译诚诸课谈谓谨贡财贫贷贸贺"
        "赛赞赠轨轻较辆辑迁违连适逻遗邻郑鉴钢钥铁铺销锅锋镇闪闹阵阳随隐鸡雾静顶项顿颜饮馆驱"
        "驶骤鲜黄齐龄龙滚绑击于"
    ),
    (
        "們這個為麼說會來時對開關問題號碼賬戶錢現無錄驗證單訂買賣還進過發邊話認識讓請謝設訊記"
        "論該語誤讀調誰詳評試詢訴計鐘銀錯鎖鏈鍵網絡線級紅給經結統終續紙組細練約紀頁顧預領頻"
        "額順東車轉軟輸載輪貝費資貨質購貴賠貼賺負責敗門閉間聞見規視覺覽馬騙魚鳥動務辦頭實寶"
        "長區醫華國圖園團塊壞場處備復夠將專導層歲幣師帳廣應廢總態慣掃護報擔擁換據損攝數斷顯"
        "書條極構標樣機權檢歡氣沒匯滿測濟點熱靈愛獨環電畫療盤確禮離種稱積窮筆簽類羅義習職聯"
        "勝腦與節藥慮補裝觀觸趕躍達運遠選遞遲郵釋鈕閱隊階際陸險難須風飯體丟兩嚴豐臨樂亂爭虧"
        "產親億僅從價眾優傳傷兌養冊寫軍農凍減憑劉則剛創刪別勞勢衛壓歷廳縣參雙變啟員響啞圓聲"
        "奪奮婦孫寧審寬尋盡屬島帶幫庫異棄張彈徹憶懷惡惱懸驚執擴擾搶掛擇擠揮擺敵舊曉暫術殺雜"
        "槍檔橋夢歐畢湯溝淺潤漲漸溫燈煉煩燒狀猶豬獻暢蓋監碩礎禍競築簡糧緊納縱織紹絕績維綜編"
        "緩縮罰肅腸膚脅腳舉艦藝蘇薦獲營蕭藍雖蝕襲討議講許訪詐診詞譯誠諸課談謂謹貢財貧貸貿賀"
        "賽贊贈軌輕較輛輯遷違連適邏遺鄰鄭鑒鋼鑰鐵鋪銷鍋鋒鎮閃鬧陣陽隨隱雞霧靜頂項頓顏飲館驅"
        "駛驟鮮黃齊齡龍滾綁擊於"
    ),
)
SIMPLIFIED_ONLY = frozenset(_PAIRS[0])
# 裡/裏 (里), 麵 (面), 髮 (发): Traditional forms whose Simplified one both scripts use.
TRADITIONAL_ONLY = frozenset(_PAIRS[1]) | frozenset("裡裏麵髮")

_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+")


def _is_han(char: str) -> bool:
    point = ord(char)
    return 0x4E00 <= point <= 0x9FFF or 0x3400 <= point <= 0x4DBF or 0x20000 <= point <= 0x2FFFF


def _is_kana(char: str) -> bool:
    return 0x3040 <= ord(char) <= 0x30FF


def _is_hangul(char: str) -> bool:
    point = ord(char)
    return 0xAC00 <= point <= 0xD7A3 or 0x1100 <= point <= 0x11FF


def script_locale(text: str) -> str | None:
    """The locale a text's script points to, or None when the script does not tell.

    Chinese when its characters outnumber the Latin words (`我的 app 闪退了`), in
    Traditional (`zh-Hant`) when it uses more Traditional-only than Simplified-only
    characters, else Simplified (`zh-Hans`); English (`en`) for Latin script; `ja` for
    kana, `ko` for Hangul (the templates' default locale answers those)."""
    han = kana = hangul = traditional = simplified = 0
    for char in text:
        if _is_han(char):
            han += 1
            traditional += char in TRADITIONAL_ONLY
            simplified += char in SIMPLIFIED_ONLY
        elif _is_kana(char):
            kana += 1
        elif _is_hangul(char):
            hangul += 1
    latin_words = len(_LATIN_WORD.findall(text))
    if kana and kana + han >= latin_words:
        return "ja"
    if hangul and hangul >= max(han, latin_words):
        return "ko"
    if han and han >= latin_words:
        return "zh-Hant" if traditional > simplified else "zh-Hans"
    if latin_words:
        return "en"
    return None


def region_of(locale: str) -> str | None:
    """The region subtag of a BCP 47 tag, upper-cased: `zh-TW` → `TW`, `zh_Hant_HK` →
    `HK`, `es-419` → `419`; None when the tag names none (`zh-Hant`, `en`)."""
    subtags = locale.replace("_", "-").split("-")
    for subtag in subtags[1:]:
        if len(subtag) == 1:
            return None  # an extension (-u-…, -x-…) starts: no region came before it
        if (len(subtag) == 2 and subtag.isalpha()) or (len(subtag) == 3 and subtag.isdigit()):
            return subtag.upper()
    return None
