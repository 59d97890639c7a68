"""Cue tables of the question classifier: weighted regex fragments per question type, Korean and English.

English fragments are written for re.ASCII so that ``\\b`` still works where Korean particles are glued to a Latin
word ("python으로", "API를"): under Unicode rules Hangul counts as a word character and the boundary would vanish.
Korean fragments match stems ("계산", "써\\s*줘") and never use ``\\b``. Patterns are matched case-insensitively, except
inside ``(?-i:...)``.
"""

from __future__ import annotations

from typing import Final

# (name, weight, pattern). Weights: 5 structural (code fences, tracebacks, ∫), 4 unambiguous words ("poem",
# "방정식"), 3 strong topical words, 2 medium, 1 or less for generic words that only tip a balance.
# Patterns must not contain capturing groups: each compiled branch ends in a named group that says which cue it is.
Cue = tuple[str, float, str]

CODE: Final[tuple[Cue, ...]] = (
    ("fence", 5, r"```"),
    ("traceback", 5, r"traceback \(most recent call last\)|\bat [\w.$]+\([\w.]+:\d+\)"),
    ("def", 5, r"\bdef\s+\w+\s*\(|\bfunction\s+\w+\s*\(|\bfunc\s+\w+\s*\(|\bfn\s+\w+\s*\("),
    ("class", 4, r"\bclass\s+\w+\s*[:({]|\bpublic\s+(?:static\s+)?(?:void|class|int|string)\b|#include\s*<"),
    ("import", 4, r"\bfrom\s+[\w.]+\s+import\s+\w|(?:\A|\n)\s*import\s+[\w.{]|\bimport\s+\w+\s+as\s+\w|\brequire\("),
    ("error", 4, r"(?-i:\b[A-Z]\w*(?:Error|Exception)\b)|\bsegmentation fault|\bsegfault|\bstack ?trace|\bcore dumped"),
    (
        "sql",
        5,
        r"(?-i:\bSELECT\b[^;]{1,200}?\bFROM\b)|\bselect\s+(?:\*|distinct\b|count\s*\()"
        r"|\b(?:insert\s+into|delete\s+from|create\s+(?:table|index)|alter\s+table|inner\s+join|left\s+join)\b",
    ),
    ("shell", 4, r"(?:\A|\n)\s*\$\s+\w|\b(?:sudo|chmod|chown|grep|awk|curl|wget|kubectl|rm\s+-rf|ls\s+-\w)\b"),
    (
        "command",
        4,
        r"\b(?:apt(?:-get)?|brew|pip3?|npm|yarn|pnpm|conda|cargo|go)\s+(?:install|add|run|build|get|i)\b"
        r"|\bgit\s+(?:commit|push|pull|rebase|merge|checkout|clone|reset|stash|log|branch|cherry-pick|status|diff"
        r"|revert|fetch|add)\b|\bdocker(?:-compose)?\s+(?:run|build|compose|ps|exec|pull|push)\b",
    ),
    ("regex", 5, r"\bregexp?\b|\bregular expressions?\b|정규\s*(?:식|표현)|\\[dwsb][+*?{]|\[\^?[a-z0-9]-[a-z0-9]\]"),
    ("call", 3, r"\b[a-z_]\w*\.[a-z_]\w*\s*\(|\b(?:print|printf|println|len|range|console\.log|setstate)\s*\("),
    ("operator", 2, r"=>|!=|==|&&|\|\||\+\+|\+=|::|\{\s*\}|\)\s*\{|;\s*(?:\n|\Z)"),
    ("html", 3, r"</?(?:div|span|html|body|head|script|style|button|input|form|ul|li|table|img)\b[^>]{0,80}>"),
    ("identifier", 2, r"(?-i:\b[a-z]+_[a-z_]+\b|\b[a-z]+[A-Z][a-zA-Z]*\b)"),
    ("file", 2, r"\b[\w-]+\.(?:py|js|ts|tsx|jsx|java|cpp|go|rs|rb|php|sql|sh|ya?ml|json|toml|css|ipynb|kt)\b"),
    (
        "language",
        3,
        r"\b(?:python|javascript|typescript|java|c\+\+|c#|golang|rust|ruby|php|kotlin|scala|perl|haskell|bash"
        r"|powershell|sql|mysql|postgres(?:ql)?|sqlite|mongodb|redis|html|css|jquery|json|yaml|xml|graphql)(?![\w+#])"
        r"|파이썬|자바스크립트|타입스크립트|자바(?!섬)|코틀린|러스트|고랭|스위프트|루비|쉘\s*스크립트",
    ),
    (
        "framework",
        3,
        r"\breact(?:js|\s*native|\s+(?:component|hook|app|router))|\buse(?:state|effect|ref|memo|callback)\b|\bvue\b"
        r"|\bangular\b|\bdjango\b|\bflask\b|\bfastapi\b|\bspring\s*boot\b|\bnode(?:\.?js)?\b|\bexpress\.?js\b"
        r"|\bnext\.?js\b|\bpandas\b|\bnumpy\b|\btensorflow\b|\bpytorch\b|\bdocker\b|\bkubernetes\b|\bk8s\b"
        r"|\bgit(?:hub|lab)?\b|\bnginx\b|\bterraform\b|\bjupyter\b|\bvs\s?code\b|\bvlookup\b|\blangchain\b|\blinux\b"
        r"|리액트|스프링|장고|플라스크|판다스|넘파이|도커|쿠버네티스|깃(?:허브|랩)|리눅스|엔진엑스|주피터",
    ),
    (
        "concept",
        3,
        r"\b(?:code|coding|programming|debug\w*|compiler?|compil(?:e|ing|ation) error|recursion|recursive"
        r"|algorithm|data structures?|linked list|hash ?(?:map|table)|binary (?:search|tree)|big-?o|time complexity"
        r"|api|apis|endpoint|backend|frontend|database|query|queries|merge conflict|pull request|unit tests?"
        r"|refactor\w*|async|await|callback|memory leak|null pointer|localhost|cors|oauth|jwt|webhook"
        r"|environment variables?|list comprehension|dataframe|web scraping|scraper|runtime|syntax|script|div|flexbox"
        r"|css grid|quick ?sort|merge ?sort|bubble ?sort|heap ?sort|dijkstra|bfs|dfs|dynamic programming|big o)\b"
        r"|\b(?:let|const|var)\s*(?:,|and|or|vs\.?)\s*(?:let|const|var)\b"
        r"|코드|코딩|프로그래밍|디버[그깅]|컴파일|재귀|알고리즘|자료\s*구조|시간\s*복잡도|쿼리|조인|커밋|브랜치"
        r"|엔드포인트|리팩[토터]링|비동기|콜백|메모리\s*누수|포인터|참조자|딕셔너리|튜플|배열|문자열|자료형|데이터\s*프레임"
        r"|(?:반복|조건|for|if|while)\s*문|크롤(?:링|러)|스크래핑|스크립트|데이터\s*베이스|백\s*엔드|프론트\s*엔드|예외\s*처리|메[서소]드",
    ),
    (
        "term",
        2,
        r"\b(?:functions?|methods?|variables?|arrays?|loops?|classes|objects?|strings?|integers?|boolean|bugs?"
        r"|exceptions?|library|framework|module|package|dependency|dependencies|deploy\w*|server|repo\w*"
        r"|terminal|command line|cli|sdk|http|port|thread|lambda|decorator|iterator|tuple|csv|pars(?:e|ing)"
        r"|interface|inheritance|polymorphism|oop|compile|crash(?:es|ing)?|stack overflow|null|undefined|keywords?"
        r"|android|ios|swiftui|xcode|event (?:listener|handler)|generics?)\b"
        r"|함수|변수|클래스|객체|라이브러리|패키지|모듈|프레임워크|빌드|배포|버그|에러|명령어|터미널|서버|인덱스"
        r"|파싱|상속|다형성|안드로이드|앱\s*개발|이벤트\s*(?:처리|리스너|핸들러)|제네릭|스레드|쓰레드|구현|컨테이너|\bdb\b|\bsdk\b"
        r"|안\s*돌아가|실행이?\s*안\s*[돼되]|작동이?\s*안|(?:에러|오류)가?\s*(?:나|떠|발생|났)",
    ),
    (
        "how-to",
        1.5,
        r"\bhow (?:do|can|to|should) (?:i |we |you )?(?:fix|install|implement|configure|deploy|debug|parse|sort"
        r"|merge|connect|set up|setup|run|compile|handle|reverse|iterate|convert)\b|\bimplement\b"
        r"|오류|예외|개발|프로그램|설치|리스트|정렬",
    ),
)

MATH: Final[tuple[Cue, ...]] = (
    ("symbol", 5, r"[∫∑∏√π∞≤≥≠±∂∆θ∈∀∃≈]|[²³]"),
    (
        "expression",
        4,
        r"(?<![\d/.:])\d+(?:\.\d+)?\s*(?:[+*/×÷^]|\s-\s)\s*\(?-?\d+(?:\.\d+)?(?![\d/:])"
        r"|\b\d+(?:\.\d+)?\s+(?:plus|minus|times|divided by|multiplied by|to the power of|squared|cubed)\b"
        r"|\d\s*(?:곱하기|나누기|더하기|빼기)",
    ),
    ("equation", 4, r"(?<![=!<>])=(?![=>])\s*-?\s*\(?\d|\d\s*=(?![=>])|\b[xyzn]\s*=(?![=>])"),
    (
        "variable",
        4,
        r"\b\d*[a-z]\s*\^\s*[\d{(a-z]|\b\d+[xyz]\b|\b[xyz]\s*[-+*/]\s*\d|\bf\s*\(\s*x\s*\)|\be\^|\bd/dx\b|\bdy/dx\b"
        r"|\bdx\b|\blim\b|\b(?:sin|cos|tan|ln|exp|sqrt|arcsin|arctan)\s*\(?\s*[\dx(]",
    ),
    ("percent", 3, r"\d\s*(?:%|percent\b|per cent\b|퍼센트|프로(?![가-힣]))|\bpercentage of\b"),
    (
        "calculate",
        3,
        r"\bcalculat\w*|\bcompute\b|\bsolve\b|\bsimplify\b|\bfactori[sz]e\b|\brounded? to\b|\bwork out\b"
        r"|계산|구해|구하(?:시오|라|면|는|기)|풀어|풀이|값은|답은|얼마(?!나)|합은|합을|합이",
    ),
    (
        "calculus",
        4,
        r"\bderivatives?\b|\bdifferentiat\w*|\bintegra(?:l|te|ls)\b|\bintegration by\b|\blimit of\b"
        r"|\bantiderivative|\btaylor series|\bconverge[sn]?\b|미분|적분|극한|도함수|편미분|급수|수렴",
    ),
    (
        "algebra",
        3,
        r"\bequations?\b|\binequalit\w+|\bpolynomials?\b|\bquadratic\b|\bmatri(?:x|ces)\b|\bdeterminant\b"
        r"|\beigen\w*|\blogarithms?\b|\bexponents?\b|\bfactorial\b|\bsquare roots?\b|\bcube roots?\b|\bprimes?\b"
        r"|\bprime (?:numbers?|factors?)\b|\bdivisible\b|\bgcd\b|\blcm\b|\bgreatest common\b|\bleast common\b"
        r"|\bfractions?\b|\bdecimal places?\b|\bmodulo\b|\bremainder\b|\bprove\b|\bproof\b|\btheorem\b|\birrational\b"
        r"|방정식|부등식|인수분해|다항식|이차\s*(?:방정식|함수)|[일이삼]차\s*함수|행렬|벡터|로그\s*(?:함수|값|\d)|지수\s*함수"
        r"|루트|소수|약수|배수|공약수|공배수|나눈\s*나머지|분수|함수의\s*(?:그래프|최[댓솟]값|극값)|최[댓솟]값|증명|정리를?\s*증명"
        r"|홀수|짝수|제곱|근을|해를\s*구|수학|산수|팩토리얼|수열|등차|등비|시그마",
    ),
    (
        "statistics",
        3,
        r"\bprobabilit\w*|\bodds of\b|\bexpected value|\bvariance\b|\bstandard deviation|\bmean (?:of|and)\b"
        r"|\bmedian\b|\baverage (?:of|speed|score|rate)\b|\bpermutations?\b|\bcombinations?\b|\bbinomial\b"
        r"|\bnormal distribution|\bz-?score|\bconfidence interval|\bp-?value|\bdice\b|\bcoin flips?\b|\bdeck of cards"
        r"|확률|경우의\s*수|순열|조합의\s*수|기[댓대]값|분산|표준\s*편차|평균|중앙값|최빈값|주사위|동전|정규\s*분포",
    ),
    (
        "geometry",
        3,
        r"\btriangles?\b|\bcircle\b|\bradius\b|\bdiameter\b|\bcircumference\b|\bhypotenuse\b|\bpythagor\w*"
        r"|\barea of\b|\bperimeter\b|\bvolume of\b|\bsurface area\b|\bpolygon\b|\brectangle\b|\bcylinder\b"
        r"|\bsphere\b|\bslope of\b|\b(?:interior |exterior )?angles?\b|\b(?:penta|hexa|hepta|octa)gons?\b"
        r"|삼각형|사각형|원의|원주|반지름|지름|넓이|면적|부피|둘레|겉넓이|빗변|피타고라스|기울기",
    ),
    (
        "units",
        3,
        r"\d\s*(?:km|kilomet\w*|miles?|kg|kilograms?|lbs?|pounds?|ounces?|oz|grams?|g|feet|foot|ft|inch(?:es)?|cm|mm|m"
        r"|meters?|metres?|yards?|°\s*[cf]|degrees?\s*(?:c|f|celsius|fahrenheit)|liters?|litres?|ml|gallons?|mph"
        r"|km/h|kph)(?![a-z])|\b(?:in|to|into) (?:km|kilometers|miles|kg|kilograms|pounds|lbs|feet|meters|celsius"
        r"|fahrenheit|liters|gallons|inches|cm|ounces|grams)\b|몇\s*(?:km|kg|cm|킬로|마일|미터|센티|인치|피트|파운드"
        r"|온스|리터|갤런|도)|환산|섭씨|화씨|[시초분]속\s*\d",
    ),
    (
        "word-problem",
        2,
        r"\bhow (?:many|much|long|far)\b|\bin total\b|\bcompound interest\b|\bdiscount\b|\bratio\b|\bspeed\b"
        r"|몇\s*(?:개|명|번|마리|시간|분|초|일|살|배|원|km|킬로|미터|퍼센트)|총\s*(?:몇|얼마)|복리|이자|할인|비율|속력",
    ),
)

REASONING: Final[tuple[Cue, ...]] = (
    ("why", 2, r"\bwhy\b|\bhow come\b|(?<![가-힣])왜(?!란|곡)|어째서"),
    (
        "cause",
        2,
        r"\bexplain why\b|\breasons? (?:why|for|behind)\b|\bcauses? of\b|\bwhat causes?\b|\bwhat caused\b"
        r"|\bunderlying causes?\b|\blead to\b|\bresult in\b|\bdue to\b|\beffects? (?:of|on)\b|\bimpact (?:of|on)\b"
        r"|\bconsequences?\b|\bimplications?\b|이유|원인|까닭|때문|영향|결과적으로|미치는",
    ),
    (
        "compare",
        3,
        r"\bcompar(?:e|ed|ing|ison)\b|\bversus\b|\bvs\.?(?=\s)|\bcontrast\b|\bdifferences? between\b"
        r"|비교|대비해|(?:중에?|중\s*(?:에서)?)\s*(?:뭐가|어느|어떤|누가|어디)|차이(?:점)?",
    ),
    (
        "pros-cons",
        4,
        r"\bpros and cons\b|\badvantages and disadvantages\b|\btrade-?offs?\b|\bupsides? and downsides?\b"
        r"|\bbenefits and (?:drawbacks|risks)\b|장단점|장점과\s*단점|득실|트레이드\s*오프|손익",
    ),
    (
        "decision",
        3,
        r"\bshould (?:i|we|my|our)\b|\bis it (?:better|worth|wise|smarter|a good idea)\b|\bwhich (?:is|one is|would be"
        r"|option|should)\b[^?]{0,40}\bbetter\b|\bwhat(?:'s| is| would be) (?:the )?better\b|\bworth it\b"
        r"|\bbetter (?:option|choice|idea)\b|\bhow (?:should|do|can) (?:i|we) (?:decide|choose)\b|\bdecid(?:e|ing)\b"
        r"|\bdilemma\b|\bor should\b|\b(?:better|worse) than\b"
        r"|\bwhich\b[^?]{0,30}\b(?:more|less|better|worse|safer|cheaper|healthier)\b"
        r"|(?:뭐가|어떤\s*게|어떤\s*것이|어느\s*(?:쪽|게|것|거))\s*(?:더\s*)?(?:나[을아은]|낫|좋|유리|효율|맞)"
        r"|나을까|낫나|낫지|좋을까|좋을지|유리할까|유리한가|해야\s*(?:할까|하나|될까|하는지|할지)"
        r"|하는\s*게\s*(?:나을|좋을|맞을|맞나|좋은가)|할지\s*(?:고민|모르)|고민(?:이|돼|되|중|입니다)|결정|판단이?\s*안",
    ),
    ("risks", 2, r"\brisks? (?:of|in)\b|\bdownsides?\b|\bdisadvantages?\b|\bdrawbacks?\b|위험성|리스크|단점"),
    ("either-or", 2, r"\b(?:learn|use|pick|choose|go with|buy|rent|take|study|start with)\b[^?.!]{0,40}\bor\b"),
    (
        "analysis",
        3,
        r"\banaly[sz](?:e|is|ing)\b|\bevaluat(?:e|ion)\b|\bassess\b|\bcritique\b|\bwhat would happen\b"
        r"|\bwhat happens if\b|\bwhat if\b|\bpredict\b|\bargu(?:e|ment)s?\b|\bjustify\b|\bdebate\b|\bethical\b"
        r"|\baddress (?:them|this|it)\b|\bevidence\b|\bdoes (?:that|this|it) (?:mean|follow|imply)\b|\btherefore\b"
        r"|근거|타당|믿을\s*만|신뢰할\s*만|설득|효과적|해결\s*(?:방안|책)|분석|평가해|검토|따져|추론|논리|예측|어떤\s*변화|만약",
    ),
    (
        "plan",
        3,
        r"\bplan(?:ning)?\b|\bstrateg(?:y|ies|ic)\b|\broadmap\b|\bschedule\b|\bprioriti[sz]e\b|\bitinerary\b"
        r"|계획|전략|로드맵|일정(?:을|표)|방안|대책|세워\s*줘",
    ),
    (
        "logic",
        4,
        r"\bpuzzle\b|\briddle\b|\blogic(?:al)?\b|\bdeduce\b|\bif all\b|\bsyllogism\b|\bdoes it follow\b"
        r"|\b(?:taller|shorter|older|younger|faster|slower|heavier|lighter|richer) than\b|\bwho is lying\b"
        r"|\btells? the truth\b|\bliars?\b|\bknights? and knaves\b|\bif every\b|한\s*줄로|바로\s*(?:앞|뒤)에"
        r"|퍼즐|수수께끼|범인|거짓말|참말|진실을|보다\s*(?:나이가\s*|키가\s*)?(?:많|적|크|작|높|낮|빠르|느리|무거|가벼|어리|늙|비싸|싸)",
    ),
    ("approach", 1, r"\bbest (?:way|approach) to\b|\bthink through\b|\bhow would you\b|어떻게\s*(?:해야|하면\s*좋)"),
)

CREATIVE: Final[tuple[Cue, ...]] = (
    (
        "poem",
        4,
        r"\bpo(?:em|ems|etry|etic)\b|\bhaikus?\b|\bsonnets?\b|\blimericks?\b|\bverses?\b|\bstanzas?\b|\bode to\b"
        r"|\bacrostic\b|(?:\A|[\s'\"])시\s*(?:한\s*편|를|로|좀|하나|써|지어|작성)|[삼사오이]행시|동시\s*(?:를|한|써|지어)"
        r"|시조|자작시|하이쿠|소네트",
    ),
    (
        "story",
        4,
        r"\bstor(?:y|ies)\b|\bfairy ?tales?\b|\bfables?\b|\bfiction\b|\bonce upon a time\b|\bscreenplay\b"
        r"|\bnovel\b|\bfan ?fic|\bplot twist\b"
        r"|소설|동화|(?:이야기|얘기)(?:를|\s*하나|\s*좀)*\s*(?:써|지어|만들어|들려)|스토리|줄거리|단편|시나리오|대본|우화|판타지",
    ),
    (
        "lyrics",
        4,
        r"\blyrics\b|\bsongs?\b|\brap\b|\bjingle\b|\bchorus\b|\bballad\b|가사|노래|작사|징글|후렴|(?<![가-힣])랩",
    ),
    (
        "copy",
        4,
        r"\bslogans?\b|\btaglines?\b|\bcatch ?phrases?\b|\bmottos?\b|\bad copy\b|\bmarketing copy\b|\bcopywriting\b"
        r"|\bheadlines?\b|\bproduct descriptions?\b|\bcaptions?\b|\btweets?\b|\binstagram\b|\blinkedin post\b"
        r"|\bblog post\b|\bads?\b|\badvert\w*|\bpitch\b|\bpromo\w*"
        r"|슬로건|캐치\s*프레이즈|문구|카피|캡션|헤드라인|태그라인|표어|광고|홍보|인스타|블로그\s*글"
        r"|(?:상품|제품)\s*(?:설명|소개)\s*(?:글|문구)?",
    ),
    (
        "names",
        4,
        r"\bname ideas?\b|\bnames? for (?:a|an|my|our|the)\b|\bcome up with (?:a |some )?names?\b"
        r"|\bsuggest (?:a |some )?names?\b|\bbrand names?\b|\bnicknames?\b|\btitles? for\b"
        r"|이름\s*(?:좀\s*)?(?:지어|추천|짓|아이디어|만들어|후보)|작명|네이밍|닉네임|상호명|제목\s*(?:좀\s*)?(?:지어|추천)",
    ),
    (
        "joke",
        4,
        r"\bjokes?\b|\bpuns?\b|\bknock[- ]knock\b|\bpick-?up lines?\b|\bone-liners?\b"
        r"|\b(?:give|tell|write|make up|create|invent)\b(?: me)?(?: an?| some| \d+)? (?:\w+ )?riddles?\b"
        r"|농담|유머|개그|웃긴\s*(?:얘기|이야기|거|말)|웃겨\s*줘|드립|말장난",
    ),
    (
        "role-play",
        4,
        r"\bpretend\b|\brole-?play\b|\bact as\b|\bact like\b|\byou are now\b|\bfrom now on,? you\b"
        r"|\bimagine (?:you|a|that|if)\b|\bin the style of\b|\bin character\b|\bas if you were\b"
        r"|\b(?:speak|talk) like\b"
        r"|역할극|상황극|롤\s*플레이|연기해|인\s*척|처럼\s*(?:말해|대답|행동|얘기|굴어)|말투로|지금부터\s*(?:너는|넌)"
        r"|(?:너는|넌)\s*(?:이제|지금)\s*부터|빙의|상상해\s*(?:봐|서)|가상의",
    ),
    (
        "letter",
        3,
        r"\bletters?\b|\btoast\b|\bspeech\b|\beulogy\b|\bvows\b|\bgreeting card\b|\bbirthday (?:message|card|wish)"
        r"|\bcard message\b|\bwedding\b|\binvitation\b"
        r"|편지|축사|축하\s*(?:메시지|문구|글)|생일\s*(?:메시지|축하)|연설문|건배사|청첩장|인사말|카드\s*문구|고백",
    ),
    (
        "creative",
        3,
        r"\bcreative\b|\bbrainstorm\w*|\bfantasy\b|\bfictional\b|\bdescribe a day\b|\bmetaphors?\b|\bdialog(?:ue)?\b"
        r"|\bmonologue\b|\bdragons?\b|\bwizards?\b|\bunicorns?\b|\bbedtime\b"
        r"|창작|감성(?:적|을|\s*글)|짧은\s*글|주인공|상상",
    ),
    (
        "write",
        1,
        r"\b(?:write|compose|draft|create|craft|make up|invent|come up with)\b"
        r"|\bgive me \d+\b|써\s*(?:줘|주세요|줄래|봐|줄\s*수)|지어\s*(?:줘|주세요|봐|줄래)|작성해"
        r"|만들어\s*(?:줘|주세요)",
    ),
)

FACTUAL: Final[tuple[Cue, ...]] = (
    (
        "who",
        2,
        r"\bwho (?:is|was|were|wrote|invented|discovered|founded|painted|composed|created|won|built|directed|sang"
        r"|played|led|killed|designed|first)\b|누구|누가|사람은\s*\??\s*\Z",
    ),
    (
        "when",
        2,
        r"\bwhen (?:did|was|were|is|does|do)\b|\bwhat year\b|\bwhich year\b|\bwhat century\b|언제|몇\s*년|몇\s*세기",
    ),
    (
        "where",
        2,
        r"\bwhere (?:is|are|was|were|do|does|did|can)\b|\bwhich (?:country|city|continent|state|planet|ocean)\b"
        r"|\blocated\b|어디|위치",
    ),
    (
        "geography",
        3,
        r"\bcapital (?:city )?of\b|\bpopulation\b|\bcurrency of\b|\bofficial language\b|\bspoken in\b"
        r"|수도(?:는|가|\s*이름)|인구|화폐|공용어|국기",
    ),
    (
        "definition",
        2,
        r"\bdefin(?:e|ition)\b|\bmeaning of\b|\bstands? for\b|\babbreviation\b|\bacronym\b|\betymology\b"
        r"|\bwhat does [\w'\"-]+ mean\b|뜻|의미|정의|약자|어원|유래|(?:이)?란\s*(?:무엇|뭐)|(?:이)?란\?",
    ),
    (
        "history",
        2,
        r"\bhistory\b|\bhistorical\b|\bcentury\b|\bancient\b|\bempires?\b|\bwars?\b|\brevolution\b|\bdynasty\b"
        r"|\binvent(?:ed|or|ion)\b|\bdiscover(?:ed|y)\b|\bfounded\b|\bborn\b|\bdied\b"
        r"|역사|시대|왕조|전쟁|혁명|조선|고려|삼국|발명|발견|창시|설립|건국|최초|업적|태어|사망|세워졌|지어졌|만들어졌",
    ),
    (
        "measure",
        2,
        r"\bhow (?:tall|high|far|old|big|long|deep|heavy|large|hot|cold|fast) (?:is|are|was|were|does|do)\b"
        r"|\bboiling point\b|\bmelting point\b|\bspeed of light\b|\bdistance (?:from|between|to)\b"
        r"|\bhow many (?:people|countries|moons|planets|bones|languages|states|teeth|species)\b"
        r"|얼마나\s*(?:높|크|길|멀|깊|떨어|오래|무거|빨라|많)",
    ),
    (
        "superlative",
        2,
        r"\b(?:largest|biggest|smallest|tallest|highest|longest|deepest|oldest|hottest|coldest|most)\b"
        r"|가장\s*(?:큰|높은|긴|깊은|넓은|오래된|많은|작은|빠른|유명한|먼|더운|추운)|제일\s*(?:큰|높은|긴|깊은|많은|작은)"
        r"|세계\s*(?:최대|최고|최초)|세계에서",
    ),
    (
        "how-works",
        2,
        r"\bhow (?:does|do|did) (?:a |an |the )?[\w -]{1,40}? work\b|\bhow (?:is|are) [\w -]{1,30}? (?:made|formed)\b"
        r"|\bhow does [\w -]{1,40}? (?:train|protect|produce|cause|affect)\b"
        r"|원리|작동\s*방식|어떻게\s*(?:만들어|생겨|형성)",
    ),
    (
        "science",
        1,
        r"\b(?:planets?|moons?|atoms?|molecules?|cells?|species|elements?|vitamins?|proteins?|gravity|photosynthesis"
        r"|dna|volcano\w*|earthquakes?|country|countries|city|river|mountains?|mount|ocean|continent|desert|immune"
        r"|vaccines?|language)\b|행성|원소|분자|원자|세포|광합성|블랙홀|비타민|단백질|중력|화산|지진|태양|은하|공룡|바다"
        r"|나라|도시|대륙|사막|음식",
    ),
    (
        "what-is",
        1,
        r"\bwhat (?:is|are|was|were)\b|\bwhat's\b|\bwhat does\b|\bwhich\b|\btell me about\b|\bfacts? about\b"
        r"|\bexplain\b|\bdescribe\b|\boverview of\b"
        r"|뭐야|뭐예요|뭐에요|뭔가요|뭐지|무엇|뭐니|어떤|알려\s*(?:줘|주세요|줄래)|설명해|에\s*대해",
    ),
)

SMALLTALK: Final[tuple[Cue, ...]] = (
    (
        "reaction",
        4,
        r"\A[^\w가-힣ㄱ-ㅎㅏ-ㅣ]*(?:ok(?:ay)?|k|sure|yes|yeah|yep|yup|no|nope|nah|hmm+|cool|nice|great|awesome|wow|lol"
        r"|lmao|haha+|hehe|omg|oh|ah|thx|ty|np|alright|gotcha|got it|fine|good|same|really|interesting|true|right|ugh"
        r"|meh|bruh)(?:[^\w가-힣ㄱ-ㅎㅏ-ㅣ]+(?:ok(?:ay)?|sure|yes|yeah|cool|nice|great|thanks|lol|haha+|wow|really"
        r"|thank you|man|dude))*[^\w가-힣ㄱ-ㅎㅏ-ㅣ]*\Z"
        r"|\A[^\w가-힣ㄱ-ㅎㅏ-ㅣ]*(?:응|어|음+|그래|알겠어|알았어|오케이|넵?|예|아니|오|와|헐|대박|그렇구나|그렇군요?|아하|오호|맞아요?"
        r"|알겠습니다|좋아요?|네네|굿|그래요|진짜|정말|와우)[^\w가-힣ㄱ-ㅎㅏ-ㅣ]*\Z",
    ),
    (
        "greeting",
        4,
        r"\A[^\w가-힣ㄱ-ㅎㅏ-ㅣ]*(?:hi|hello|hey|heya|hiya|yo|howdy|hola|greetings"
        r"|good (?:morning|afternoon|evening|day)|morning|g'?day|what'?s up|sup|wassup)\b"
        r"|\bhello\b|\bhey there\b|\bhi there\b"
        r"|\bgood (?:morning|afternoon|evening)\b"
        r"|안녕|하이(?![가-힣])|ㅎㅇ|반가[워워요웠]|반갑|좋은\s*(?:아침|하루|밤|저녁|주말)|굿모닝|방가",
    ),
    (
        "thanks",
        4,
        r"\bthanks?\b|\bthank you\b|\bthx\b|\bmuch appreciated\b|\bappreciate it\b"
        r"|고마[워웠운]|고맙|감사(?:합니다|해요|해|드려|드립니다)|땡큐|ㄳ",
    ),
    (
        "about-you",
        4,
        r"\bhow are (?:you|u|ya)\b|\bhow(?:'s| is) it going\b|\bhow(?:'s| is| was) your (?:day|weekend|morning|night)\b"
        r"|\bhow have you been\b|\bwhat are you (?:up to|doing)\b|\bhow do you feel\b"
        r"|\bare you (?:ok|okay|there|alive|real|human|a (?:real )?person|a bot|a robot|an ai|sentient|conscious|happy"
        r"|sad|bored)\b|\bdo you (?:like|love|have feelings|dream|sleep|ever get \w+|get tired|get bored|enjoy)\b"
        r"|\bwhat(?:'s| is) your (?:favou?rite|name)\b|\bwho (?:are|r) (?:you|u)\b|\bwhat are you\b"
        r"|\bwho (?:made|created|built) you\b|\byour favou?rite\b|\b(?:did|do) you miss me\b"
        r"|(?<![가-힣])(?:너|넌|너는|당신|당신은|니가|네가)\s*(?:누구|뭐야|정체|몇\s*살|사람이|로봇|ai|인공지능|어디서\s*왔"
        r"|좋아하|싫어하|감정|기분)|(?<![가-힣])(?:너|네|니|넌|너는|당신|당신은)\s*(?:의\s*)?이름|\A이름이\s*뭐(?:야|예요|니|에요)[^\w가-힣]*\Z"
        r"|누가\s*(?:너를|널)\s*만들|자기\s*소개|잘\s*지내|잘\s*지냈|어떻게\s*지내|뭐\s*해(?!야|서|도)|뭐\s*하고\s*있|뭐하니|뭐함"
        r"|밥\s*(?:먹었|은\s*먹)|(?:오늘|하루|주말|요즘)\s*(?:하루\s*)?(?:어땠|어때|어떻게\s*보냈|잘\s*보냈)"
        r"|기분\s*어때|잘\s*보냈",
    ),
    (
        "goodbye",
        4,
        r"\b(?:good ?bye|bye|see (?:you|ya)|good night|gn|take care|talk (?:to you )?(?:later|soon)|catch you later"
        r"|have a (?:good|nice|great) (?:day|one|night|weekend))\b"
        r"|잘\s*(?:자(?![가-힣])|자요|있어|가(?![가-힣]))|다음에\s*(?:봐|또|보자|만나)|또\s*(?:봐|보자|올게|만나)"
        r"|바이(?![가-힣])|빠이|수고\s*(?:했|하세|해)|좋은\s*꿈|내일\s*봐|나중에\s*봐|ㅂㅂ|ㅂㅇ|굿나잇",
    ),
    (
        "feelings",
        3,
        r"\bi(?:'m| am| feel| was)? (?:so |really |very |kinda |a bit |feeling )*(?:bored|tired|sad|happy|lonely"
        r"|hungry|sleepy|stressed|anxious|depressed|excited|upset|angry|exhausted|sick)\b|\bi feel (?:so |really )?\w+"
        r"|\bi love you\b|\bi miss you\b|\bmy day\b|\bnice to meet you\b|\bi'?m back\b"
        r"|\bi (?:had|have had|'ve had) (?:a |such a )?(?:rough|long|bad|great|good|tough|hard|busy|weird)"
        r" (?:day|week|night)\b"
        r"|\bmerry christmas\b|\bhappy (?:new year|birthday|holidays|thanksgiving|halloween|friday|weekend)\b"
        r"|새해\s*복|메리\s*크리스마스|생일\s*축하해(?![가-힣])|하기\s*싫[다어]"
        r"|심심|배고파|배고프|피곤|졸려|졸리|우울|슬퍼|슬프|외로|행복해|기뻐|짜증|화나|힘들[어다]|지쳤|지친다|신나|설레"
        r"|무서워|걱정돼|스트레스|기분이|(?<![가-힣])나\s+(?:오늘|지금|요즘|방금|드디어)|생일이야|\bmy birthday\b"
        r"|날씨\s*(?:좋|진짜|너무|왜\s*이래)|(?:덥|춥|더워|추워|졸리|배부르|지루하)(?:다|네|어|ㅠ)",
    ),
    (
        "chat",
        3,
        r"\blet'?s (?:chat|talk)\b|\btalk to me\b|\bjust (?:chatting|saying hi)\b|\blol\b|\blmao\b|\bhaha\w*|\bhehe\b"
        r"|:\)|:\(|:d\b|\bxd\b|\bhilarious\b"
        r"|[ㅋㅎ]{2,}|ㅠ|ㅜㅜ|ㅇㅇ|ㅇㅋ|웃기[다네]|재밌[다네어]|재미있[다네]|얘기\s*(?:하자|좀\s*하자|할래)"
        r"|이야기\s*(?:하자|할래)|놀아\s*줘|수다|심심한데",
    ),
    (
        "compliment",
        3,
        r"\byou(?:'re| are) (?:so |really |very |pretty |kinda )*(?:funny|smart|clever|awesome|great|amazing|helpful"
        r"|cool|the best|nice|kind|sweet|cute|dumb|stupid|useless|boring|wrong)\b|\bgood (?:job|bot)\b|\bwell done\b"
        r"|\bthat(?:'s| is| was) (?:so |really )?(?:funny|hilarious|cool|great|awesome|interesting|nice|helpful)\b"
        r"|(?:너|넌)\s*(?:진짜|정말|참|좀)?\s*(?:똑똑|귀엽|웃기|착하|멋지|최고|바보)|잘했어|최고야|사랑해|덕분에",
    ),
)

# Not a type's cue: words that announce a question in several parts, counted towards its complexity.
MULTI_STEP: Final = (
    r"\bstep[- ]by[- ]step\b|\bcompar(?:e|ing|ison)\b|\bversus\b|\bvs\b|\band then\b|\bafter that\b|\bfinally\b"
    r"|\bfirst\b[^.?!]{0,80}\bthen\b|\bpros and cons\b|\btrade-?offs?\b|\bin detail\b|\bdetailed\b"
    r"|\bcomprehensive\b|\bthorough\w*\b|\bwalk me through\b|\bbreak (?:it |this )?down\b|\bfor each\b|\beach of\b"
    r"|\bmultiple\b|\bseveral\b|\boutline\b|\barchitecture\b|\badditionally\b|\bas well as\b"
    r"|단계별|단계적|차근차근|순서대로|비교|장단점|그리고\s*나서|그\s*다음|다음으로|먼저|마지막으로|각각|자세히|상세히"
    r"|구체적으로|설계|여러\s*가지|또한|과정을"
)
