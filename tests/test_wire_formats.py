"""Pure wire-format code, tested without sockets."""

from __future__ import annotations

import random
from typing import Any

import pydantic
import pytest
import smpp34
from aiosmpplib import NPI, TON, PhoneNumber, SubmitSm
from aiosmpplib.protocol import (
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    SmppMessage,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from aiosmpplib.state import SmppCommandStatus

from gateway.core.phones import InvalidPhone, mask, parse_cn_mobile
from gateway.core.statuses import SmppAction, smpp_outcome
from gateway.logs import mask_numbers
from gateway.receipts.backoff import next_delay
from gateway.receipts.callbacks import CallbackRejected, check_callback_url
from gateway.receipts.signing import sign, verify
from gateway.settings import SmppSettings
from gateway.sms import pdu
from gateway.sms.encoding import (
    DATA_CODING_GSM7,
    DATA_CODING_UCS2,
    TextTooLong,
    decode_payload,
    encode_sms,
)
from gateway.sms.mo import MoMessage, read_mo
from gateway.sms.receipts import (
    BadReceipt,
    ReceiptFields,
    format_receipt,
    parse_receipt,
    read_receipt_pdu,
)
from tests.fixtures.smpp_pdus import DELIVER_RECEIPT, SUBMIT_PART2


class TestEncoding:
    def test_short_gsm_text_is_one_part_without_udh(self) -> None:
        sms = encode_sms("Your licence review is due", "n1")
        assert sms.data_coding == DATA_CODING_GSM7
        assert sms.count == 1
        assert sms.esm_class == 0
        assert sms.parts[0].payload == b"Your licence review is due"

    def test_gsm_escape_characters_count_twice(self) -> None:
        assert encode_sms("€" * 80).count == 1
        assert encode_sms("€" * 81).count == 2

    def test_chinese_uses_ucs2_and_splits_at_67(self) -> None:
        assert encode_sms("测" * 70).count == 1
        sms = encode_sms("测" * 71, "n2")
        assert sms.data_coding == DATA_CODING_UCS2
        assert [len(p.text) for p in sms.parts] == [67, 4]
        udh = sms.parts[0].payload[:6]
        assert udh[:3] == b"\x05\x00\x03"
        assert udh[4:] == b"\x02\x01"
        assert encode_sms("测" * 201).count == 3
        assert encode_sms("测" * 202).count == 4

    def test_surrogate_pairs_are_not_cut(self) -> None:
        text = "测" * 66 + "🚗" + "测" * 5  # 73 UTF-16 units: two parts
        parts = encode_sms(text).parts
        assert parts[0].text == "测" * 66
        assert parts[1].text == "🚗" + "测" * 5
        assert "".join(p.text for p in parts) == text

    def test_parts_round_trip_through_the_decoder(self) -> None:
        text = "【交警提示】请保护好现场，拨打120。" * 6
        sms = encode_sms(text, "n3")
        decoded = [decode_payload(p.payload, sms.data_coding, sms.esm_class) for p in sms.parts]
        assert "".join(t for t, _ in decoded) == text
        refs = {c[0] for _, c in decoded if c}
        assert len(refs) == 1
        assert [c[2] for _, c in decoded if c] == list(range(1, sms.count + 1))

    def test_reference_is_stable_per_notice(self) -> None:
        a = encode_sms("测" * 100, "ntc_same").parts[0].payload[3]
        b = encode_sms("测" * 100, "ntc_same").parts[0].payload[3]
        assert a == b

    def test_too_long_text_is_refused(self) -> None:
        with pytest.raises(TextTooLong):
            encode_sms("测" * 67 * 256)

    def test_recorded_submit_sm_decodes_to_the_second_part(self) -> None:
        pdu = smpp34.decode(bytes.fromhex(SUBMIT_PART2))
        assert isinstance(pdu, smpp34.SubmitSm)
        assert pdu.destination_addr == "8613800138000"
        assert (pdu.dest_addr_ton, pdu.dest_addr_npi) == (1, 1)
        assert pdu.esm_class == 0x40
        assert pdu.data_coding == 8
        text, concat = decode_payload(pdu.short_message, pdu.data_coding, pdu.esm_class)
        assert concat is not None
        assert concat[1:] == (2, 2)
        assert text.startswith("提示】测试【交警")


class TestReceipts:
    def test_recorded_receipt_parses_with_tlvs(self) -> None:
        pdu = smpp34.decode(bytes.fromhex(DELIVER_RECEIPT))
        assert isinstance(pdu, smpp34.DeliverSm)
        tlvs = {t.tag: t.value for t in pdu.tlvs}
        r = parse_receipt(
            pdu.short_message.decode(), tlvs[0x001E].rstrip(b"\0").decode(), tlvs[0x0427][0]
        )
        assert (r.message_id, r.stat, r.status, r.final) == (
            "000000002a",
            "DELIVRD",
            "delivered",
            True,
        )
        assert r.done_at is not None
        assert r.done_at.minute == 31

    def test_text_only_receipt(self) -> None:
        r = parse_receipt(
            "id:abc sub:001 dlvrd:000 submit date:2611280230 "
            "done date:2611280231 stat:UNDELIV err:034 text:hello world"
        )
        assert (r.message_id, r.status, r.err) == ("abc", "undeliverable", "034")

    def test_format_and_parse_round_trip(self) -> None:
        for stat, status in (
            ("DELIVRD", "delivered"),
            ("EXPIRED", "expired"),
            ("REJECTD", "rejected"),
            ("UNDELIV", "undeliverable"),
        ):
            assert parse_receipt(format_receipt("x1", stat)).status == status

    def test_enroute_is_not_final(self) -> None:
        assert not parse_receipt("id:1 stat:ENROUTE").final

    @pytest.mark.parametrize("text", ["", "garbage", "stat:DELIVRD", "id:", "id:5 err:xx"])
    def test_garbage_receipts_raise_bad_receipt(self, text: str) -> None:
        with pytest.raises(BadReceipt):
            parse_receipt(text)


class TestReceiptPdu:
    """The short way a worker reads a receipt deliver_sm, against what the libraries make."""

    def test_recorded_receipt_reads_like_the_general_parser(self) -> None:
        raw = bytes.fromhex(DELIVER_RECEIPT)
        fields = read_receipt_pdu(raw)
        assert fields is not None
        assert (fields.receipted_message_id, fields.message_state) == ("000000002a", 2)
        header = SmppMessage.parse_header(raw)
        general = DeliverSm.from_pdu(raw, header)
        assert isinstance(general, DeliverSm)
        assert fields.text == general.short_message
        assert parse_receipt(fields.text).stat == "DELIVRD"

    def test_text_only_receipt_and_an_mo_message(self) -> None:
        text = format_receipt("7f", "UNDELIV", 34)
        receipt = DeliverSm(
            short_message=text,
            source=PhoneNumber("8613800138000"),
            destination=PhoneNumber("12122"),
            esm_class=0x04,
            sequence_num=7,
        )
        fields = read_receipt_pdu(receipt.pdu())
        assert fields == ReceiptFields(text, None, None, "8613800138000")
        mo = DeliverSm(
            short_message="TD",
            source=PhoneNumber("8613800138000"),
            destination=PhoneNumber("12122"),
            sequence_num=8,
        )
        assert read_receipt_pdu(mo.pdu()) is None  # not a receipt: left to the library

    def test_ucs2_receipt_text_in_the_payload_tlv(self) -> None:
        text = format_receipt("abc", "EXPIRED")
        body = (
            b"\0"  # service_type
            + b"\x01\x018613800138000\0"  # source
            + b"\x00\x0012122\0"  # destination
            + b"\x04\x00\x00"  # esm_class (receipt), protocol_id, priority_flag
            + b"\0\0"  # schedule_delivery_time, validity_period
            + b"\x00\x00\x08\x00\x00"  # registered, replace, data_coding UCS-2, default, length 0
        )
        payload = text.encode("utf-16-be")
        body += (0x0424).to_bytes(2) + len(payload).to_bytes(2) + payload
        pdu = (16 + len(body)).to_bytes(4) + (5).to_bytes(4) + bytes(4) + (3).to_bytes(4) + body
        assert read_receipt_pdu(pdu) == ReceiptFields(text, None, None, "8613800138000")

    @pytest.mark.parametrize(
        "mangle",
        [
            lambda b: b[:40],  # cut inside the addresses
            lambda b: b[:-2],  # cut inside the last TLV
            lambda b: b + b"\x00",  # a stray octet after the TLVs
            lambda b: b[:16] + b"\x41" * (len(b) - 16),  # no NUL where a string must end
            lambda b: b[:16],  # no body at all
        ],
    )
    def test_malformed_receipts_are_left_to_the_general_parser(self, mangle: Any) -> None:
        assert read_receipt_pdu(mangle(bytes.fromhex(DELIVER_RECEIPT))) is None


class TestRoundTripPdus:
    """The submit_sm a worker frames itself, and the answers it reads itself, against what
    aiosmpplib writes and reads for the same message."""

    @pytest.mark.parametrize(
        ("text", "source"),
        [
            ("Road closed tomorrow", "12122"),  # GSM 7-bit, one part, numeric source
            ("明天8时至18时人民路封闭，请绕行北京路。", "12122"),  # UCS-2, one part
            ("交通管制" * 30, "TrafficPol"),  # UCS-2 in parts with a UDH; alphanumeric source
            ("Licence review due. " * 12, "12122"),  # GSM 7-bit in parts
        ],
    )
    def test_submit_sm_is_the_octets_aiosmpplib_writes(self, text: str, source: str) -> None:
        sms = encode_sms(text, "n-1")
        ton = TON.UNKNOWN if source.isdigit() else TON.ALPHANUMERIC
        for part in sms.parts:
            mine = pdu.frame(
                pdu.SUBMIT_SM,
                4242 + part.index,
                pdu.submit_sm_body(
                    pdu.submit_sm_source(source, ton, 0),
                    "8613800138000",
                    TON.INTERNATIONAL,
                    NPI.ISDN,
                    sms.esm_class,
                    sms.data_coding,
                    part.payload,
                ),
            )
            theirs = SubmitSm(
                short_message=part.text,
                source=PhoneNumber(source, ton),
                destination=PhoneNumber("8613800138000", TON.INTERNATIONAL, NPI.ISDN),
                esm_class=sms.esm_class,
                encoding="ucs2" if sms.encoding == "ucs2" else None,
                registered_delivery=1,
                sequence_num=4242 + part.index,
            )
            theirs.set_encoded_message(part.payload)
            assert mine == theirs.pdu()
            # and the SMSC's library reads back what was meant
            decoded = smpp34.decode(mine)
            assert isinstance(decoded, smpp34.SubmitSm)
            assert decoded.destination_addr == "8613800138000"
            assert decoded.source_addr == source
            assert decoded.data_coding == sms.data_coding
            assert decoded.short_message == part.payload

    @pytest.mark.parametrize(
        ("number", "message"),
        [("86138001380001234567890", "not a valid SMPP field"), ("86１38", "not ASCII")],
    )
    def test_an_address_no_smsc_can_take_is_refused(self, number: str, message: str) -> None:
        source = pdu.submit_sm_source("12122", 0, 0)
        with pytest.raises(ValueError, match=message) as refused:
            pdu.submit_sm_body(source, number, 1, 1, 0, 0, b"hi")
        assert number not in str(refused.value)  # the message goes to logs
        with pytest.raises(ValueError, match="254"):
            pdu.submit_sm_body(source, "8613800138000", 1, 1, 0, 0, bytes(255))

    @pytest.mark.parametrize("source", ["交警支队", "A" * 21, "", "12\x00122"])
    def test_a_source_address_no_submit_sm_can_carry_is_refused_in_the_settings(
        self, source: str
    ) -> None:
        with pytest.raises(pydantic.ValidationError, match="smpp_source_addr"):
            SmppSettings(smpp_source_addr=source)
        assert SmppSettings(smpp_source_addr="TrafficPol").smpp_source_addr == "TrafficPol"

    def test_answers_read_like_aiosmpplib_reads_them(self) -> None:
        resp = SubmitSmResp(sequence_num=9, message_id="0000002a").pdu()
        assert pdu.read_submit_sm_resp(resp) == "0000002a"
        assert pdu.pdu_length(resp, 0) == len(resp)
        assert pdu.read_submit_sm_resp(pdu.frame(pdu.SUBMIT_SM_RESP, 9, status=0x58)) == ""
        assert pdu.deliver_sm_resp(77) == DeliverSmResp(sequence_num=77).pdu()

    @pytest.mark.parametrize(
        "body",
        [b"0000002a", b"\xff\xfe\0", b"a" * 70 + b"\0"],
        ids=["no NUL", "not ASCII", "too long"],
    )
    def test_an_unreadable_message_id_is_refused(self, body: bytes) -> None:
        with pytest.raises(pdu.BadPdu):
            pdu.read_submit_sm_resp(pdu.frame(pdu.SUBMIT_SM_RESP, 1, body))

    @pytest.mark.parametrize("length", [0, 15, pdu.MAX_PDU_LENGTH + 1, 0xFFFFFFFF])
    def test_a_length_no_pdu_can_have_is_refused(self, length: int) -> None:
        with pytest.raises(pdu.BadPdu):
            pdu.pdu_length(length.to_bytes(4) + bytes(12), 0)


class TestSessionPdus:
    """The session's own PDUs, octet for octet against aiosmpplib, read back by smpp34."""

    def test_bind_transceiver_is_the_octets_aiosmpplib_writes(self) -> None:
        mine = pdu.bind_transceiver(1, "gateway", "secret", "VMA")
        theirs = BindTransceiver(
            system_id="gateway", password="secret", system_type="VMA", sequence_num=1
        )
        assert mine == theirs.pdu()
        decoded = smpp34.decode(mine)
        assert isinstance(decoded, smpp34.RawPdu)
        assert (decoded.command_id, decoded.sequence_number) == (0x09, 1)
        assert decoded.body == b"gateway\0secret\0VMA\0\x34\0\0\0"

    def test_a_bind_credential_no_smsc_can_take_is_refused_without_showing_it(self) -> None:
        with pytest.raises(ValueError, match="password of 9 octets") as refused:
            pdu.bind_transceiver(1, "gateway", "longpass9", "")
        assert "longpass9" not in str(refused.value)

    def test_bind_resp_names_the_smsc(self) -> None:
        resp = pdu.bind_transceiver_resp(1, "SMSC")
        assert resp == BindTransceiverResp(sequence_num=1, system_id="SMSC").pdu()
        assert pdu.read_bind_resp(resp) == "SMSC"
        assert pdu.read_bind_resp(pdu.frame(pdu.BIND_TRANSCEIVER_RESP, 1, status=0x0D)) == ""

    @pytest.mark.parametrize(
        ("mine", "theirs", "command", "status"),
        [
            (pdu.enquire_link(7), EnquireLink(sequence_num=7), 0x15, 0),
            (pdu.response(pdu.ENQUIRE_LINK, 7), EnquireLinkResp(sequence_num=7), 0x80000015, 0),
            (pdu.unbind(7), Unbind(sequence_num=7), 0x06, 0),
            (pdu.response(pdu.UNBIND, 7), UnbindResp(sequence_num=7), 0x80000006, 0),
            (
                pdu.generic_nack(7),
                GenericNack(sequence_num=7, command_status=SmppCommandStatus.ESME_RINVCMDID),
                0x80000000,
                0x03,
            ),
        ],
        ids=["enquire_link", "enquire_link_resp", "unbind", "unbind_resp", "generic_nack"],
    )
    def test_header_only_pdus(
        self, mine: bytes, theirs: SmppMessage, command: int, status: int
    ) -> None:
        assert mine == theirs.pdu()
        decoded = smpp34.decode(mine)
        assert isinstance(decoded, smpp34.RawPdu)
        assert (decoded.command_id, decoded.command_status, decoded.sequence_number) == (
            command,
            status,
            7,
        )
        assert decoded.body == b""

    def test_a_deliver_sm_refused_as_unreadable_carries_its_status(self) -> None:
        raw = pdu.deliver_sm_resp(9, pdu.ESME_RX_P_APPN)
        assert raw == bytes.fromhex("00000011800000050000006500000009") + b"\0"


class TestDeliverSm:
    """deliver_sm as the SMSC's library writes it, read by the gateway's session."""

    @staticmethod
    def _mo(payload: bytes, **kw: Any) -> bytes:
        kw.setdefault("source_addr_ton", 1)
        kw.setdefault("source_addr_npi", 1)
        return smpp34.DeliverSm("8613800138000", "12122", payload, sequence_number=5, **kw).encode()

    def test_a_gsm_mo_message(self) -> None:
        d = pdu.read_deliver_sm(self._mo(b"TD"))
        assert d is not None
        assert not d.is_receipt
        assert read_mo(d) == MoMessage("8613800138000", "12122", "TD")

    def test_a_ucs2_mo_part_with_a_udh(self) -> None:
        udh = bytes((0x05, 0x00, 0x03, 0x2A, 0x02, 0x01))
        raw = self._mo(udh + "退订".encode("utf-16-be"), esm_class=0x40, data_coding=0x08)
        d = pdu.read_deliver_sm(raw)
        assert d is not None
        assert read_mo(d) == MoMessage("8613800138000", "12122", "退订", (0x2A, 2, 1))

    def test_a_mo_part_numbered_by_sar_tlvs_in_the_payload_tlv(self) -> None:
        tlvs = [
            smpp34.Tlv(smpp34.TLV_SAR_MSG_REF_NUM, (300).to_bytes(2)),
            smpp34.Tlv(smpp34.TLV_SAR_TOTAL_SEGMENTS, b"\x03"),
            smpp34.Tlv(smpp34.TLV_SAR_SEGMENT_SEQNUM, b"\x02"),
            smpp34.Tlv(smpp34.TLV_MESSAGE_PAYLOAD, "停车".encode("utf-16-be")),
        ]
        d = pdu.read_deliver_sm(self._mo(b"", data_coding=0x08, tlvs=tlvs))
        assert d is not None
        assert read_mo(d) == MoMessage("8613800138000", "12122", "停车", (300, 3, 2))

    def test_a_one_part_udh_is_a_whole_message(self) -> None:
        udh = bytes((0x05, 0x00, 0x03, 0x01, 0x01, 0x01))
        d = pdu.read_deliver_sm(self._mo(udh + b"STOP", esm_class=0x40))
        assert d is not None
        assert read_mo(d).concat is None

    def test_a_receipt_with_its_tlvs(self) -> None:
        tlvs = [
            smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, b"0a1b\0"),
            smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, b"\x05"),
        ]
        raw = self._mo(format_receipt("0a1b", "UNDELIV").encode(), esm_class=0x04, tlvs=tlvs)
        d = pdu.read_deliver_sm(raw)
        assert d is not None
        assert d.is_receipt
        assert (d.receipted_message_id, d.message_state) == ("0a1b", 5)


class TestPhones:
    @pytest.mark.parametrize(
        "raw",
        [
            "13800138000",
            "+8613800138000",
            "008613800138000",
            "8613800138000",
            "+86 138 0013 8000",
            "138-0013-8000",
        ],
    )
    def test_accepted_forms(self, raw: str) -> None:
        assert parse_cn_mobile(raw).national == "13800138000"

    @pytest.mark.parametrize(
        ("raw", "code"),
        [
            ("+14155552671", "foreign_phone"),
            ("087163123456", "not_mobile"),
            ("1380013", "invalid_phone"),
            ("138abc38000", "invalid_phone"),
            ("", "invalid_phone"),
            ("1" * 40, "invalid_phone"),
            ("12345678901", "invalid_phone"),
        ],
    )
    def test_refused_forms(self, raw: str, code: str) -> None:
        with pytest.raises(InvalidPhone) as err:
            parse_cn_mobile(raw)
        assert err.value.code == code

    def test_masking(self) -> None:
        assert mask("13800138000") == "138****8000"
        assert mask("8613800138000") == "138****8000"
        assert (
            mask_numbers("to 8613800138000 and 13912345678.") == "to 86138****8000 and 139****5678."
        )


class TestCallbacks:
    def test_allowed_host_and_wildcard(self) -> None:
        hosts = ["hooks.example.com", "*.police.example"]
        assert check_callback_url("https://hooks.example.com/a?b=1", hosts)
        assert check_callback_url("https://cc.police.example/x", hosts)

    @pytest.mark.parametrize(
        ("url", "code"),
        [
            ("https://police.example/x", "callback_host_not_allowed"),
            ("https://hooks.example.com.evil.io/", "callback_host_not_allowed"),
            ("http://127.0.0.1/", "callback_host_not_allowed"),
            ("http://[::1]/", "callback_host_not_allowed"),
            ("http://10.1.2.3/", "callback_host_not_allowed"),
            ("http://localhost/", "callback_host_not_allowed"),
            ("gopher://hooks.example.com/", "invalid_callback_url"),
            ("https://hooks.example.com:99999/", "invalid_callback_url"),
            ("https://user@hooks.example.com/", "invalid_callback_url"),
            ("https:///nohost", "invalid_callback_url"),
        ],
    )
    def test_refused(self, url: str, code: str) -> None:
        with pytest.raises(CallbackRejected) as err:
            check_callback_url(url, ["hooks.example.com", "*.police.example"])
        assert err.value.code == code

    def test_private_address_only_when_named_exactly(self) -> None:
        assert check_callback_url("http://10.0.0.5/cb", ["10.0.0.5"])
        assert check_callback_url("http://10.0.0.5:8080/cb", ["10.0.0.5:8080"])
        with pytest.raises(CallbackRejected):
            check_callback_url("http://10.0.0.6/", ["10.0.0.5", "*.0.0.6"])

    def test_ports_other_than_80_and_443_only_when_the_entry_names_them(self) -> None:
        """A key allowing 127.0.0.1 does not reach Redis's port on it."""
        with pytest.raises(CallbackRejected, match="only 80 and 443") as err:
            check_callback_url("http://127.0.0.1:6379/", ["127.0.0.1"])
        assert err.value.host == "127.0.0.1:6379"  # the entry that would allow it
        assert check_callback_url("http://127.0.0.1:6379/", ["127.0.0.1:6379"])
        with pytest.raises(CallbackRejected):
            check_callback_url("http://127.0.0.1:6380/", ["127.0.0.1:6379"])
        assert check_callback_url("https://a.partner.cn:8443/", ["*.partner.cn:8443"])
        with pytest.raises(CallbackRejected):
            check_callback_url("https://a.partner.cn/", ["*.partner.cn:8443"])
        assert check_callback_url("http://[::1]:9000/", ["[::1]:9000"])
        assert check_callback_url("http://[0:0::1]/", ["::1"])  # one address, two spellings


def test_signature_matches_the_documented_construction() -> None:
    import hashlib
    import hmac

    body = b'{"id":"ntc_1","status":"delivered"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", "1700000000", body) == "sha256=" + expected
    assert verify("s3cret", "1700000000", body, "sha256=" + expected)
    assert not verify("s3cret", "1700000001", body, "sha256=" + expected)


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [next_delay(a, 5, 1800, rng) for a in range(1, 20)]
    assert 2.5 <= delays[0] <= 5
    assert all(900 <= d <= 1800 for d in delays[10:])
    assert len({round(d, 3) for d in delays}) == len(delays)
    # Retries cover at least six hours within the attempts made before giving up.
    total, attempt = 0.0, 1
    while total < 6 * 3600:
        total += next_delay(attempt, 5, 1800, random.Random(attempt))
        attempt += 1
    assert attempt < 40


def test_smpp_status_table() -> None:
    assert smpp_outcome(0) == ("ESME_ROK", SmppAction.OK)
    assert smpp_outcome(0x58) == ("ESME_RTHROTTLED", SmppAction.RETRY)
    assert smpp_outcome(0x14) == ("ESME_RMSGQFUL", SmppAction.RETRY)
    assert smpp_outcome(0x0B)[1] is SmppAction.FINAL
    assert smpp_outcome(0x12345)[1] is SmppAction.FINAL
