"""The HTML report: one self-contained page with the summary and four charts."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from campaigns.reports import write_report
from tests.reports import data


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.ids: list[str] = []
        self.figures: dict[str, list[str]] = {}
        self._figure: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "srcset", "data") and value:
                self.urls.append((tag, name, value))
            if name == "id" and value:
                self.ids.append(value)
        if tag == "figure":
            self._figure = dict(attrs).get("id") or ""
            self.figures[self._figure] = []
        elif self._figure is not None:
            self.figures[self._figure].append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._figure = None

    def handle_data(self, text: str) -> None:
        self.text.append(text)


async def test_html_report_is_self_contained_with_charts(db_url: str, tmp_path: Path) -> None:
    await data.build(db_url)
    path = tmp_path / "report.html"
    result = await write_report(db_url, "spring", path, now=data.NOW)
    assert result.format == "html"
    html = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    page.close()
    assert set(page.figures) == {"outcomes", "timeline", "by-attempt", "local-hour"}
    for name, inner in page.figures.items():
        assert "svg" in inner and ("path" in inner or "rect" in inner), name
    external = [u for u in page.urls if not u[2].startswith("#")]
    assert external == [], external
    assert not {"script", "link", "img", "iframe", "object"} & set(page.tags)
    assert len(page.ids) == len(set(page.ids)), "ids collide between the inline SVGs"
    text = " ".join(page.text)
    assert "Campaign report: spring" in text
    for label in ("answer rate", "human rate", "machine rate", "voicemails left",
                  "talk time median", "attempts per contact", "dials per hour", "ETA"):
        assert label in text
    # the charts' text is real text: outcome names and axis titles can be found
    assert "human" in text and "no_answer" in text and "attempt number" in text
    assert "hour of the contact's local day" in text


async def test_html_of_empty_campaign_renders(sqlite_url: str, tmp_path: Path) -> None:
    from campaigns.db.engine import create_engine, session_factory
    from campaigns.db.models import Campaign

    engine = create_engine(sqlite_url)
    async with session_factory(engine)() as s, s.begin():
        s.add(Campaign(name="new", from_number="+14155550100", connection_id="1"))
    await engine.dispose()
    path = tmp_path / "new.html"
    await write_report(sqlite_url, "new", path)
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    assert len(page.figures) == 4 and "no data yet" in " ".join(page.text)
