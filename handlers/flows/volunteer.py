"""Volunteer registration (volunteer_register): 我是在职党员，来社区报到.

Asks, one at a time, for what is missing: name, phone, employer, party branch,
residential community (from the gazetteer; asked again, with choices, when unsure),
skills, weekly availability and an invitation code (optional: a community's code
approves at once, else staff approve). The summary's 提交 registers.

Registering twice is answered with the registration already made. A phone another
account registered offers to link this account: a one-time code goes to the other
account, and typing it here joins this account to the same volunteer. A used,
expired or unknown code is answered clearly and changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

from handlers.flows.base import CANCEL, HANDOFF_INTENT, Expect, Paused, Turn
from handlers.flows.chat import MENU_HUMAN
from handlers.flows.contact import masked, phone_of, with_lead
from handlers.flows.volunteer_steps import (
    SKILL_WORDS,
    VOL,
    DeskFlow,
    skill_names,
    skill_note,
    skills_of,
    slots_of,
)
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import NO, SKIP, YES, AnyOf, Words, words
from integration.volunteers import (
    AlreadyRegistered,
    CodeRefused,
    PhoneTaken,
    VolunteerDraft,
    VolunteerView,
)

SKILL, FREE, SUBMIT, NO_CODE = f"{VOL}skill:", f"{VOL}free:", f"{VOL}submit", f"{VOL}nocode"
STEPS = (
    ("name", "name"),
    ("phone", "phone"),
    ("employer", "employer"),
    ("branch", "branch"),
    ("community", "community"),
    ("skills", "skills"),
    ("availability", "slots"),
    ("code", "code"),
)
_NAME = re.compile(r"^(?:我叫|我是|姓名|名字)?[:：\s]*([\u4e00-\u9fa5·]{2,6})$")
# Someone who says they are not a party member (我不是党员, 群众可以吗): told where to go.
NOT_A_MEMBER = words("not_a_member", "不是党员|非党员|没入党|群众可以|群众能")
# Leaving the register (我不想当志愿者了, 退出志愿者): the community does that, not the bot.
LEAVE = words(
    "leave_volunteers",
    "(退出|不想当|不当|不做|不干|注销|取消|不想做|不想干)(了)?(党员)?志愿者|志愿者.{0,2}(不当|不做|不干|退出|注销)",
)
# A place is no name (幸福家园, 人民路): what the name step must not take.
_PLACE = re.compile("小区|社区|街道|花园|家园|公寓|大厦|广场|[路街巷村苑楼号]$")
# Who one is, not one's name (党员, 在职党员, 退休职工): the name is asked again.
_A_ROLE = re.compile("党员|志愿者|居民|群众|退休|在职|职工|同志|网格员|业主|党支部")
# What no employer or branch is: a yes or no, a skip, 不知道 (asked again instead).
_NOT_A_NAME = words(
    "not_a_name",
    "是的?|对的?|好的?|行|嗯|确认|确定|提交|可以|没有|无|不是|不对|不用|跳过|"
    "不知道|不清楚|忘了|不记得",
    whole=True,
)
# Words about oneself that answer the skills or free-time steps (会修水电, 周末有空).
_ABOUT_ME = re.compile("^(?:我)?(?:会|能|擅长|懂|可以)|有空|有时间|空闲|没空|特长")
_BEFORE_COMMUNITY = ("name", "phone", "employer", "branch")
INVITE_CODE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z0-9]{8})(?![A-Za-z0-9])")
LINK_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
# Names, employers and branches read as anything (王建国 as small talk, 自来水公司 as a
# report, 不知道叫啥 as a request for help): only these interrupt a registration.
INTERRUPTS = {
    HANDOFF_INTENT: Paused.keep,
    "check_status": Paused.keep,
    "goodbye": Paused.drop,
}
FREE_PRESETS = {"weekday_evening": "工作日晚上", "weekend": "周末", "any": "随时"}
SKILL_ANY = AnyOf("skills", tuple(SKILL_WORDS.values()))
FREE_WORDS = words(
    "free", "周|星期|礼拜|工作日|平时|随时|每天|天天|上午|下午|晚上|白天|全天|都行|都可以"
)


# A day or a part of one: 助老和维修都行 says nothing about when (都行 is the skills').
_WHEN = re.compile("周|星期|礼拜|工作日|平时|随时|每天|天天|上午|下午|晚上|白天|全天")


def _free_clauses(text: str) -> str:
    """The clauses of ``text`` that say when one is free (周末有空 of 会修水电，周末有空)."""
    clauses = re.split(r"[，,。；;、\s]+", text)
    return "，".join(c for c in clauses if c and _WHEN.search(c))


class RegisterFlow(DeskFlow):
    """Registers a party-member volunteer."""

    name = "volunteer_register"

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Begin, unless this account is registered already."""
        inbound = turn.inbound
        known = await self._desk.volunteer(inbound)
        if LEAVE.search(turn.text):  # 我不想当志愿者了: the community takes a volunteer off
            if known is None:
                return [Outbound(self._t("volunteer.leave_not_registered"))]
            human = Button(self._t("button.menu_human"), MENU_HUMAN)
            text = self._t("volunteer.leave", name=known.name, community=known.community)
            return [Outbound(text, (human,))]
        if known is not None:
            return [self._already(known)]
        if NOT_A_MEMBER.search(turn.text):  # 我不是党员: this register is party members'
            return [Outbound(self._t("volunteer.not_a_member"))]
        state.begin(self.name, "name", {})
        phone = phone_of(turn)
        if phone:
            state.slots["phone"] = phone
        return [Outbound(self._t("volunteer.welcome")), *self._advance(state)]

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """The answer to the active step, or its question again."""
        step, slots, text, payload = state.step or "name", state.slots, turn.text, turn.payload
        if step == "confirm" and (payload == SUBMIT or (not payload and YES.search(text))):
            return await self._submit(turn, state)
        if step == "link":
            return await self._link(turn, state)
        before = dict(slots)
        if step in _BEFORE_COMMUNITY and not payload and (early := self._early(turn, state)):
            return early
        if step == "name":
            match = _NAME.match(text.replace(" ", ""))
            said = match.group(1) if match else ""
            if (
                said
                and not self._communities(text)
                and not _PLACE.search(said)
                and not _A_ROLE.search(said)
                and not _NOT_A_NAME.search(said)
            ):
                slots["name"] = said
        elif step == "phone" and phone_of(turn):
            slots["phone"] = phone_of(turn)
        elif step in ("employer", "branch") and 2 <= len(text) <= 60 and not payload:
            if not _NOT_A_NAME.search(text):  # 确认 or 不知道 names no employer or branch
                slots[step] = text
        elif step == "community":
            return self._community(turn, state)
        elif step == "skills":
            if payload.startswith(SKILL):
                slots["skills"] = [payload.removeprefix(SKILL)]
            elif self._take_skills(slots, text):  # 会修水电，周末有空: free time too
                self._take_free(slots, _free_clauses(text))
        elif step == "availability":
            words_ = FREE_PRESETS.get(payload.removeprefix(FREE), "") if payload else text
            self._take_free(slots, words_)
        elif step == "code":
            match = INVITE_CODE.search(text)
            if match and not payload:
                code = match.group(1).upper()
                problem = await self._desk.volunteers.code_problem(code, turn.inbound.time)
                if problem:
                    state.reprompts += 1
                    question = self.ask(state)[0]
                    lead = self._t(f"volunteer.code_{problem}")
                    return [Outbound(f"{lead}\n{question.text}", question.buttons)]
                slots["code"] = code
            elif payload == NO_CODE or NO.search(text) or SKIP.search(text):
                slots["code"] = ""
        if slots == before:
            state.reprompts += 1
            question = self.ask(state)[0]
            lead = self._t("volunteer.reask_name" if step == "name" else "volunteer.reprompt")
            return [Outbound(f"{lead}\n{question.text}", question.buttons)]
        return self._advance(state)

    def expect(self, state: ConversationState) -> Expect:
        """Each step takes free text; the buttons where there are some."""
        step = state.step or "name"
        if step == "phone":
            return Expect(entities=frozenset({"phone"}), text=True, interrupts=INTERRUPTS)
        if step == "skills":
            return Expect(prefixes=(SKILL,), words=(SKILL_ANY,), text=True, interrupts=INTERRUPTS)
        if step == "availability":
            return Expect(prefixes=(FREE,), words=(FREE_WORDS,), text=True, interrupts=INTERRUPTS)
        if step == "code":
            # A code is eight random letters and digits: whatever the model reads in it
            # (4Y82D8B7 as 再见, by its 88), it answers the step before any interruption.
            return Expect(
                payloads=frozenset({NO_CODE}),
                words=(Words("invite_code", INVITE_CODE),),
                text=True,
                interrupts=INTERRUPTS,
            )
        if step == "link":
            return Expect(words=(Words("link_code", LINK_CODE),), text=True, interrupts=INTERRUPTS)
        if step == "confirm":
            return Expect(payloads=frozenset({SUBMIT}), words=(YES,), intents=frozenset({"affirm"}))
        return Expect(text=True, interrupts=INTERRUPTS)

    def ask(self, state: ConversationState) -> list[Outbound]:
        """The active step's question."""
        step, slots = state.step or "name", state.slots
        cancel = Button(self._t("button.cancel"), CANCEL)
        t = self._t
        if step == "skills":
            buttons = tuple(Button(t(f"volunteer.skill.{s}"), f"{SKILL}{s}") for s in SKILL_WORDS)
            return [Outbound(t("volunteer.ask_skills"), (*buttons, cancel))]
        if step == "availability":
            buttons = tuple(Button(w, f"{FREE}{k}") for k, w in FREE_PRESETS.items())
            return [Outbound(t("volunteer.ask_availability"), (*buttons, cancel))]
        if step == "code":
            return [
                Outbound(t("volunteer.ask_code"), (Button(t("volunteer.no_code"), NO_CODE), cancel))
            ]
        if step == "link":
            return [Outbound(t("volunteer.ask_link_code"), (cancel,))]
        if step == "community" and slots.get("choices"):
            buttons = tuple(Button(name, name) for name in slots["choices"])
            return [Outbound(t("volunteer.which_community"), (*buttons, cancel))]
        if step == "confirm":
            text = t(
                "volunteer.confirm",
                name=slots["name"],
                phone=masked(slots["phone"]),
                employer=slots["employer"],
                branch=slots["branch"],
                community=slots["community"],
                skills=skill_names(t, slots["skills"], slots.get("skill_note", "")),
                free=slots["free_words"],
                code=slots["code"] or t("volunteer.code_none"),
            )
            return [Outbound(text, (Button(t("button.submit"), SUBMIT), cancel))]
        return [Outbound(t(f"volunteer.ask_{step}"), (cancel,))]

    # -- steps ---------------------------------------------------------------------------

    @staticmethod
    def _take_skills(slots: dict[str, Any], said: str) -> bool:
        """Keep the skills ``said`` names, and its own words for any the list has no
        name for (会开车, 擅长做PPT: 其他, with the words kept for staff)."""
        skills, note = list(skills_of(said)), skill_note(said)
        if note and "other" not in skills:
            skills.append("other")
        if skills:
            slots["skills"], slots["skill_note"] = skills, note
        return bool(skills)

    @staticmethod
    def _take_free(slots: dict[str, Any], said: str) -> None:
        """Keep the weekly free time ``said`` names (nothing when it names none)."""
        free = slots_of(said) if said else ()
        if free:
            slots["slots"], slots["free_words"] = [list(s) for s in free], said

    def _advance(self, state: ConversationState) -> list[Outbound]:
        step = next((name for name, slot in STEPS if slot not in state.slots), "confirm")
        state.step, state.reprompts = step, 0
        return self.ask(state)

    def _early(self, turn: Turn, state: ConversationState) -> list[Outbound] | None:
        """A later step's answer given at an earlier one, kept for its step and the step
        asked again: the community (金辉小区 at the name or phone question), skills and
        free time (会修水电，周末有空 at the phone or employer question). None: nothing of
        the kind.

        The phone question also takes its number from the same message; an employer or
        branch must say nothing else (金辉小区物业公司 is an employer)."""
        step, slots, text = state.step, state.slots, turn.text
        noted: list[str] = []
        community = self._one_community(text)
        if (
            community is not None
            and "community" not in slots
            and (step in ("name", "phone") or turn.only_a_value)
        ):
            slots["community"] = community
            noted.append(self._t("volunteer.community_noted", community=community))
        if step in ("phone", "employer", "branch") and _ABOUT_ME.search(text):
            before = dict(slots)
            if "skills" not in slots:
                self._take_skills(slots, text)
            if "slots" not in slots:
                self._take_free(slots, _free_clauses(text))
            if slots != before:
                noted.append(self._t("volunteer.skills_noted"))
        if not noted:
            return None
        if step == "phone" and phone_of(turn):
            slots["phone"] = phone_of(turn)
            return with_lead("".join(noted), self._advance(state))
        return with_lead("".join(noted), self.ask(state))

    def _communities(self, text: str) -> list[str]:
        """The communities of the gazetteer that ``text`` names, in its order."""
        return list(dict.fromkeys(m.community.name for m in self._desk.gazetteer.find(text)))

    def _one_community(self, text: str) -> str | None:
        """The one community ``text`` names, if exactly one."""
        found = self._communities(text)
        return found[0] if len(found) == 1 else None

    def _community(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots = state.slots
        gazetteer = self._desk.gazetteer
        found = self._communities(turn.payload or turn.text)
        if len(found) == 1:
            slots.pop("choices", None)
            slots["community"] = found[0]
            return self._advance(state)
        if len(found) > 1:  # 金辉小区和碧水苑: which one?
            slots["choices"] = found[:5]
            return self.ask(state)
        state.reprompts += 1
        examples = "、".join(c.name for c in list(gazetteer)[:3])
        return [
            Outbound(
                self._t("volunteer.unknown_community", examples=examples),
                (Button(self._t("button.cancel"), CANCEL),),
            )
        ]

    async def _submit(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots, inbound = state.slots, turn.inbound
        draft = VolunteerDraft(
            channel=inbound.channel,
            user_id=inbound.user_id,
            chat_id=inbound.chat_id,
            name=slots["name"],
            phone=slots["phone"],
            employer=slots["employer"],
            branch=slots["branch"],
            community=slots["community"],
            skills=tuple(slots["skills"]),
            slots=tuple((int(d), str(p)) for d, p in slots["slots"]),
            skill_note=slots.get("skill_note", ""),
        )
        try:
            volunteer = await self._desk.volunteers.register(draft, slots["code"], inbound.time)
        except AlreadyRegistered as known:
            state.finish()
            return [self._already(known.volunteer)]
        except CodeRefused as refused:
            slots.pop("code")
            state.step, state.reprompts = "code", 0
            lead = self._t(f"volunteer.code_{refused.reason}")
            return [Outbound(f"{lead}\n{self.ask(state)[0].text}", self.ask(state)[0].buttons)]
        except PhoneTaken as taken:
            await self._desk.volunteers.offer_link(
                taken.volunteer_id,
                inbound.channel,
                inbound.user_id,
                self._t("volunteer.link_code_push"),
                inbound.time,
            )
            state.step, state.reprompts = "link", 0
            return [
                Outbound(
                    self._t("volunteer.phone_taken"), (Button(self._t("button.cancel"), CANCEL),)
                )
            ]
        state.finish()
        key = (
            "volunteer.registered_approved"
            if volunteer.approved
            else "volunteer.registered_pending"
        )
        return [Outbound(self._t(key, name=volunteer.name, community=volunteer.community))]

    async def _link(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        match = LINK_CODE.search(turn.text)
        if match is None:
            state.reprompts += 1
            return self.ask(state)
        inbound = turn.inbound
        try:
            volunteer = await self._desk.volunteers.link(
                inbound.channel, inbound.user_id, inbound.chat_id, match.group(1), inbound.time
            )
        except CodeRefused as refused:
            state.reprompts += 1
            lead = self._t(f"volunteer.code_{refused.reason}")
            return [
                Outbound(
                    f"{lead}\n{self._t('volunteer.ask_link_code')}",
                    (Button(self._t("button.cancel"), CANCEL),),
                )
            ]
        state.finish()
        return [Outbound(self._t("volunteer.linked", name=volunteer.name))]

    def _already(self, volunteer: VolunteerView) -> Outbound:
        return Outbound(
            self._t(
                f"volunteer.already_{volunteer.status.value}",
                name=volunteer.name,
                community=volunteer.community,
            )
        )
