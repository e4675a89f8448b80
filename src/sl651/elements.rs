//! The element table of SL 651-2014 (要素标识符汇总表) and the codec of one element's value.
//!
//! In a HEX frame every element is an identifier byte, a data-definition byte (high five bits:
//! number of data bytes, low three bits: decimals) and the data. Values are BCD; a negative
//! value carries one more byte, `FF`, in front of its digits (and its definition counts it);
//! data that is all `F` means the RTU has no value. The hourly series DRP (F4) and DRZ1–8
//! (F5–FC) are binary, not BCD: twelve one-byte amounts in 0.1 mm (`FF` absent) and twelve
//! two-byte levels in centimetres (`FFFF` absent). Identifier `FF` introduces a user-defined
//! element whose second byte says which; those are kept raw with their BCD reading.
//!
//! The table's digits and decimals are the standard's defaults, used when encoding; decoding
//! always follows the definition byte the RTU sent, because RTUs differ in precision.

use super::Sl651Error;

/// How an element's data is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A BCD number with the definition byte's decimals.
    Number,
    /// DRP: twelve 5-minute rainfall amounts, one byte each in 0.1 mm, `FF` absent.
    RainSeries,
    /// DRZ1–DRZ8: twelve 5-minute levels, two bytes each in cm, `FFFF` absent.
    LevelSeries,
    /// ZT: 32 status and alarm bits (binary, not BCD).
    Status,
    /// The time-step code of a uniform-interval report: BCD day, hour, minute.
    TimeStep,
    /// Text or binary data that hydrowatch keeps as it came (manual data, pictures, flow batches).
    Raw,
}

/// One row of the element table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementInfo {
    /// Identifier byte in HEX frames.
    pub code: u8,
    /// Identifier in ASCII frames and the standard's short name (Z, PT, DRP...).
    pub symbol: &'static str,
    /// The standard's name of the element.
    pub name: &'static str,
    /// Unit of the decoded value ("" when dimensionless).
    pub unit: &'static str,
    /// Default number of decimal digits N(digits, decimals): used when encoding.
    pub digits: u8,
    /// Default decimals.
    pub decimals: u8,
    pub kind: Kind,
}

impl ElementInfo {
    /// The data-definition byte the standard's N(digits, decimals) gives.
    pub fn definition(&self) -> u8 {
        let bytes = match self.kind {
            Kind::RainSeries => 12,
            Kind::LevelSeries => 24,
            Kind::Status => 4,
            _ => self.digits.div_ceil(2),
        };
        (bytes << 3) | (self.decimals & 0x07)
    }
}

const fn e(
    code: u8,
    symbol: &'static str,
    name: &'static str,
    unit: &'static str,
    digits: u8,
    decimals: u8,
) -> ElementInfo {
    ElementInfo {
        code,
        symbol,
        name,
        unit,
        digits,
        decimals,
        kind: Kind::Number,
    }
}

const fn k(
    code: u8,
    symbol: &'static str,
    name: &'static str,
    unit: &'static str,
    kind: Kind,
) -> ElementInfo {
    ElementInfo {
        code,
        symbol,
        name,
        unit,
        digits: 0,
        decimals: 0,
        kind,
    }
}

/// The element table of SL 651-2014 (appendix: element identifiers), 01–75 and F2–FD.
/// 76–EF are reserved by the standard; F0 (TT) and F1 (ST) are guides handled by the body.
pub const TABLE: &[ElementInfo] = &[
    e(0x01, "AC", "断面面积 cross-section area", "m²", 8, 2),
    e(0x02, "AI", "瞬时气温 air temperature", "°C", 3, 1),
    e(0x03, "C", "瞬时水温 water temperature", "°C", 3, 1),
    ElementInfo {
        digits: 6,
        ..k(
            0x04,
            "DRxnn",
            "时间步长码 time-step code",
            "",
            Kind::TimeStep,
        )
    },
    e(
        0x05,
        "DT",
        "时段长 period length (hours.minutes)",
        "h.min",
        4,
        2,
    ),
    e(0x06, "ED", "日蒸发量 daily evaporation", "mm", 5, 1),
    e(0x07, "EJ", "当前蒸发 current evaporation", "mm", 5, 1),
    e(0x08, "FL", "气压 air pressure", "hPa", 5, 0),
    e(0x09, "GH", "闸门开启高度 gate opening height", "m", 5, 2),
    e(0x0A, "GN", "输水设备、闸门编号 gate number", "", 3, 0),
    e(0x0B, "GS", "输水设备类别 equipment type", "", 1, 0),
    e(0x0C, "GT", "闸门开启孔数 open gates", "", 3, 0),
    e(0x0D, "GTP", "地温 ground temperature", "°C", 3, 1),
    e(0x0E, "H", "地下水瞬时埋深 groundwater depth", "m", 6, 2),
    e(0x0F, "HW", "波浪高度 wave height", "m", 5, 2),
    e(0x10, "M10", "10 cm 土壤含水量 soil moisture", "%", 4, 1),
    e(0x11, "M20", "20 cm 土壤含水量 soil moisture", "%", 4, 1),
    e(0x12, "M30", "30 cm 土壤含水量 soil moisture", "%", 4, 1),
    e(0x13, "M40", "40 cm 土壤含水量 soil moisture", "%", 4, 1),
    e(0x14, "M50", "50 cm 土壤含水量 soil moisture", "%", 4, 1),
    e(0x15, "M60", "60 cm 土壤含水量 soil moisture", "%", 4, 1),
    e(0x16, "M80", "80 cm 土壤含水量 soil moisture", "%", 4, 1),
    e(0x17, "M100", "100 cm 土壤含水量 soil moisture", "%", 4, 1),
    e(0x18, "MST", "湿度 humidity", "%", 4, 1),
    e(0x19, "NS", "开机台数 machines running", "", 2, 0),
    e(0x1A, "P1", "1 小时时段降水量 1-hour rainfall", "mm", 5, 1),
    e(0x1B, "P2", "2 小时时段降水量 2-hour rainfall", "mm", 5, 1),
    e(0x1C, "P3", "3 小时时段降水量 3-hour rainfall", "mm", 5, 1),
    e(0x1D, "P6", "6 小时时段降水量 6-hour rainfall", "mm", 5, 1),
    e(
        0x1E,
        "P12",
        "12 小时时段降水量 12-hour rainfall",
        "mm",
        5,
        1,
    ),
    e(0x1F, "PD", "日降水量 daily rainfall", "mm", 5, 1),
    e(0x20, "PJ", "当前降水量 current rainfall", "mm", 5, 1),
    e(
        0x21,
        "PN01",
        "1 分钟时段降水量 1-minute rainfall",
        "mm",
        5,
        1,
    ),
    e(
        0x22,
        "PN05",
        "5 分钟时段降水量 5-minute rainfall",
        "mm",
        5,
        1,
    ),
    e(
        0x23,
        "PN10",
        "10 分钟时段降水量 10-minute rainfall",
        "mm",
        5,
        1,
    ),
    e(
        0x24,
        "PN30",
        "30 分钟时段降水量 30-minute rainfall",
        "mm",
        5,
        1,
    ),
    e(0x25, "PR", "暴雨量 storm rainfall", "mm", 5, 1),
    e(0x26, "PT", "降水量累计值 accumulated rainfall", "mm", 6, 1),
    e(0x27, "Q", "瞬时流量 discharge", "m³/s", 9, 3),
    e(0x28, "Q1", "取(排)水口流量 1 intake flow 1", "m³/s", 9, 3),
    e(0x29, "Q2", "取(排)水口流量 2 intake flow 2", "m³/s", 9, 3),
    e(0x2A, "Q3", "取(排)水口流量 3 intake flow 3", "m³/s", 9, 3),
    e(0x2B, "Q4", "取(排)水口流量 4 intake flow 4", "m³/s", 9, 3),
    e(0x2C, "Q5", "取(排)水口流量 5 intake flow 5", "m³/s", 9, 3),
    e(0x2D, "Q6", "取(排)水口流量 6 intake flow 6", "m³/s", 9, 3),
    e(0x2E, "Q7", "取(排)水口流量 7 intake flow 7", "m³/s", 9, 3),
    e(0x2F, "Q8", "取(排)水口流量 8 intake flow 8", "m³/s", 9, 3),
    e(0x30, "QA", "总出库流量 total outflow", "m³/s", 9, 3),
    e(0x31, "QZ", "输水设备、过闸流量 gate flow", "m³/s", 9, 3),
    e(0x32, "SW", "输沙量 sediment discharge", "10⁴ t", 11, 3),
    e(0x33, "UC", "风向 wind direction", "", 2, 0),
    e(0x34, "UE", "风力 wind force", "", 2, 0),
    e(0x35, "US", "风速 wind speed", "m/s", 4, 1),
    e(0x36, "VA", "断面平均流速 mean velocity", "m/s", 5, 3),
    e(0x37, "VJ", "当前瞬时流速 current velocity", "m/s", 5, 3),
    e(0x38, "VT", "电源电压 supply voltage", "V", 4, 2),
    e(0x39, "Z", "瞬时河道水位、潮位 river level", "m", 7, 3),
    e(0x3A, "ZB", "库(闸、站)下水位 downstream level", "m", 7, 3),
    e(0x3B, "ZU", "库(闸、站)上水位 upstream level", "m", 7, 3),
    e(0x3C, "Z1", "取(排)水口水位 1 intake level 1", "m", 7, 3),
    e(0x3D, "Z2", "取(排)水口水位 2 intake level 2", "m", 7, 3),
    e(0x3E, "Z3", "取(排)水口水位 3 intake level 3", "m", 7, 3),
    e(0x3F, "Z4", "取(排)水口水位 4 intake level 4", "m", 7, 3),
    e(0x40, "Z5", "取(排)水口水位 5 intake level 5", "m", 7, 3),
    e(0x41, "Z6", "取(排)水口水位 6 intake level 6", "m", 7, 3),
    e(0x42, "Z7", "取(排)水口水位 7 intake level 7", "m", 7, 3),
    e(0x43, "Z8", "取(排)水口水位 8 intake level 8", "m", 7, 3),
    e(0x44, "SQ", "含沙量 sediment concentration", "kg/m³", 9, 3),
    k(
        0x45,
        "ZT",
        "遥测站状态及报警信息 status and alarms",
        "",
        Kind::Status,
    ),
    e(0x46, "PH", "pH 值 pH", "", 4, 2),
    e(0x47, "DO", "溶解氧 dissolved oxygen", "mg/L", 4, 1),
    e(0x48, "COND", "电导率 conductivity", "µS/cm", 5, 0),
    e(0x49, "TURB", "浊度 turbidity", "°", 3, 0),
    e(
        0x4A,
        "CODMN",
        "高锰酸盐指数 permanganate index",
        "mg/L",
        4,
        1,
    ),
    e(0x4B, "REDOX", "氧化还原电位 redox potential", "mV", 5, 1),
    e(0x4C, "NH4N", "氨氮 ammonia nitrogen", "mg/L", 6, 2),
    e(0x4D, "TP", "总磷 total phosphorus", "mg/L", 5, 3),
    e(0x4E, "TN", "总氮 total nitrogen", "mg/L", 5, 2),
    e(0x4F, "TOC", "总有机碳 total organic carbon", "mg/L", 4, 2),
    e(0x50, "CU", "铜 copper", "mg/L", 7, 4),
    e(0x51, "ZN", "锌 zinc", "mg/L", 6, 4),
    e(0x52, "SE", "硒 selenium", "mg/L", 7, 5),
    e(0x53, "AS", "砷 arsenic", "mg/L", 7, 5),
    e(0x54, "THG", "总汞 mercury", "mg/L", 7, 5),
    e(0x55, "CD", "镉 cadmium", "mg/L", 7, 5),
    e(0x56, "PB", "铅 lead", "mg/L", 7, 5),
    e(0x57, "CHLA", "叶绿素 a chlorophyll a", "mg/L", 4, 2),
    e(0x58, "WP1", "水压 1 water pressure 1", "kPa", 5, 2),
    e(0x59, "WP2", "水压 2 water pressure 2", "kPa", 5, 2),
    e(0x5A, "WP3", "水压 3 water pressure 3", "kPa", 5, 2),
    e(0x5B, "WP4", "水压 4 water pressure 4", "kPa", 5, 2),
    e(0x5C, "WP5", "水压 5 water pressure 5", "kPa", 5, 2),
    e(0x5D, "WP6", "水压 6 water pressure 6", "kPa", 5, 2),
    e(0x5E, "WP7", "水压 7 water pressure 7", "kPa", 5, 2),
    e(0x5F, "WP8", "水压 8 water pressure 8", "kPa", 5, 2),
    e(
        0x60,
        "SYL1",
        "水表 1 剩余水量 meter 1 remaining",
        "m³",
        11,
        3,
    ),
    e(
        0x61,
        "SYL2",
        "水表 2 剩余水量 meter 2 remaining",
        "m³",
        11,
        3,
    ),
    e(
        0x62,
        "SYL3",
        "水表 3 剩余水量 meter 3 remaining",
        "m³",
        11,
        3,
    ),
    e(
        0x63,
        "SYL4",
        "水表 4 剩余水量 meter 4 remaining",
        "m³",
        11,
        3,
    ),
    e(
        0x64,
        "SYL5",
        "水表 5 剩余水量 meter 5 remaining",
        "m³",
        11,
        3,
    ),
    e(
        0x65,
        "SYL6",
        "水表 6 剩余水量 meter 6 remaining",
        "m³",
        11,
        3,
    ),
    e(
        0x66,
        "SYL7",
        "水表 7 剩余水量 meter 7 remaining",
        "m³",
        11,
        3,
    ),
    e(
        0x67,
        "SYL8",
        "水表 8 剩余水量 meter 8 remaining",
        "m³",
        11,
        3,
    ),
    e(
        0x68,
        "SBL1",
        "水表 1 每小时水量 meter 1 hourly",
        "m³/h",
        10,
        2,
    ),
    e(
        0x69,
        "SBL2",
        "水表 2 每小时水量 meter 2 hourly",
        "m³/h",
        10,
        2,
    ),
    e(
        0x6A,
        "SBL3",
        "水表 3 每小时水量 meter 3 hourly",
        "m³/h",
        10,
        2,
    ),
    e(
        0x6B,
        "SBL4",
        "水表 4 每小时水量 meter 4 hourly",
        "m³/h",
        10,
        2,
    ),
    e(
        0x6C,
        "SBL5",
        "水表 5 每小时水量 meter 5 hourly",
        "m³/h",
        10,
        2,
    ),
    e(
        0x6D,
        "SBL6",
        "水表 6 每小时水量 meter 6 hourly",
        "m³/h",
        10,
        2,
    ),
    e(
        0x6E,
        "SBL7",
        "水表 7 每小时水量 meter 7 hourly",
        "m³/h",
        10,
        2,
    ),
    e(
        0x6F,
        "SBL8",
        "水表 8 每小时水量 meter 8 hourly",
        "m³/h",
        10,
        2,
    ),
    e(0x70, "VTA", "交流 A 相电压 AC voltage A", "V", 4, 1),
    e(0x71, "VTB", "交流 B 相电压 AC voltage B", "V", 4, 1),
    e(0x72, "VTC", "交流 C 相电压 AC voltage C", "V", 4, 1),
    e(0x73, "VIA", "交流 A 相电流 AC current A", "A", 4, 1),
    e(0x74, "VIB", "交流 B 相电流 AC current B", "A", 4, 1),
    e(0x75, "VIC", "交流 C 相电流 AC current C", "A", 4, 1),
    k(0xF2, "RGZS", "人工置数 manual data", "", Kind::Raw),
    k(0xF3, "PIC", "图片信息 picture", "", Kind::Raw),
    k(
        0xF4,
        "DRP",
        "1 小时内每 5 分钟时段雨量 5-minute rainfall",
        "mm",
        Kind::RainSeries,
    ),
    k(
        0xF5,
        "DRZ1",
        "1 小时内 5 分钟间隔相对水位 1 5-minute level 1",
        "m",
        Kind::LevelSeries,
    ),
    k(
        0xF6,
        "DRZ2",
        "1 小时内 5 分钟间隔相对水位 2 5-minute level 2",
        "m",
        Kind::LevelSeries,
    ),
    k(
        0xF7,
        "DRZ3",
        "1 小时内 5 分钟间隔相对水位 3 5-minute level 3",
        "m",
        Kind::LevelSeries,
    ),
    k(
        0xF8,
        "DRZ4",
        "1 小时内 5 分钟间隔相对水位 4 5-minute level 4",
        "m",
        Kind::LevelSeries,
    ),
    k(
        0xF9,
        "DRZ5",
        "1 小时内 5 分钟间隔相对水位 5 5-minute level 5",
        "m",
        Kind::LevelSeries,
    ),
    k(
        0xFA,
        "DRZ6",
        "1 小时内 5 分钟间隔相对水位 6 5-minute level 6",
        "m",
        Kind::LevelSeries,
    ),
    k(
        0xFB,
        "DRZ7",
        "1 小时内 5 分钟间隔相对水位 7 5-minute level 7",
        "m",
        Kind::LevelSeries,
    ),
    k(
        0xFC,
        "DRZ8",
        "1 小时内 5 分钟间隔相对水位 8 5-minute level 8",
        "m",
        Kind::LevelSeries,
    ),
    k(0xFD, "DATA", "流速批量数据 velocity batch", "", Kind::Raw),
];

/// Identifier of the observation-time guide (TT): `F0 F0` + five BCD bytes.
pub const OBSERVATION_TIME: u8 = 0xF0;
/// Identifier of the station-address guide (ST): `F1 F1` + five bytes + station type.
pub const STATION_ADDRESS: u8 = 0xF1;
/// Identifier of a user-defined element: `FF`, then the element's own byte.
pub const USER_DEFINED: u8 = 0xFF;

/// The table row of a standard identifier.
pub fn info(code: u8) -> Option<&'static ElementInfo> {
    TABLE.iter().find(|i| i.code == code)
}

/// The table row of an ASCII-frame symbol (`Z`, `PT`, `DRP`...).
pub fn info_by_symbol(symbol: &str) -> Option<&'static ElementInfo> {
    TABLE.iter().find(|i| i.symbol == symbol)
}

/// Which element: a standard identifier (possibly outside the table) or a user-defined one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    /// An identifier byte of the standard's table, or a reserved one an RTU uses anyway.
    Standard(u8),
    /// `FF xx`: defined by the RTU's maker or the province.
    UserDefined(u8),
    /// An ASCII-frame symbol that is not in the table.
    Symbol(String),
}

impl Identifier {
    /// The table row, when the standard defines this element.
    pub fn info(&self) -> Option<&'static ElementInfo> {
        match self {
            Identifier::Standard(code) => info(*code),
            Identifier::UserDefined(_) | Identifier::Symbol(_) => None,
        }
    }

    /// How the element is written in audits: `39 Z`, `FFA0`, `7A`, or the ASCII symbol.
    pub fn label(&self) -> String {
        match self {
            Identifier::Standard(code) => match info(*code) {
                Some(i) => format!("{code:02X} {}", i.symbol),
                None => format!("{code:02X}"),
            },
            Identifier::UserDefined(code) => format!("FF{code:02X}"),
            Identifier::Symbol(s) => s.clone(),
        }
    }
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number in the element's unit.
    Number(f64),
    /// The RTU said it has no value (all `F`).
    Absent,
    /// Twelve 5-minute values (DRP in mm, DRZ in m), `None` where the RTU marked one absent;
    /// or the values of a uniform-interval report, one per time step.
    Series(Vec<Option<f64>>),
    /// ZT status and alarm bits.
    Status(u32),
    /// A time step of a uniform-interval report, in minutes.
    Step { minutes: u32 },
    /// Kept as it came: text, pictures, data that is not valid BCD.
    Raw,
}

/// One element of a report, with the bytes it came from for audit.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub identifier: Identifier,
    /// The data-definition byte as sent (HEX frames); for ASCII frames the table's.
    pub definition: u8,
    pub value: Value,
    /// The element's data as it came (without identifier and definition byte).
    pub raw: Vec<u8>,
}

impl Element {
    /// The standard's short name (`Z`, `PT`...), or the label of an unknown element.
    pub fn symbol(&self) -> String {
        match self.identifier.info() {
            Some(i) => i.symbol.to_string(),
            None => self.identifier.label(),
        }
    }

    /// The standard's name, or "unknown" for elements outside the table.
    pub fn name(&self) -> &'static str {
        self.identifier.info().map_or("unknown", |i| i.name)
    }

    /// The unit of the value ("" when dimensionless or unknown).
    pub fn unit(&self) -> &'static str {
        self.identifier.info().map_or("", |i| i.unit)
    }

    /// The number, when the value is one.
    pub fn number(&self) -> Option<f64> {
        match self.value {
            Value::Number(v) => Some(v),
            _ => None,
        }
    }
}

/// Bytes of data a definition byte announces.
pub fn data_len(definition: u8) -> usize {
    usize::from(definition >> 3)
}

/// Decimals a definition byte announces.
pub fn decimals(definition: u8) -> u8 {
    definition & 0x07
}

/// Decodes one element's data per its kind and definition byte.
pub fn decode_value(identifier: &Identifier, definition: u8, data: &[u8]) -> Value {
    let kind = identifier.info().map_or(Kind::Number, |i| i.kind);
    match kind {
        Kind::Number => decode_number(definition, data),
        Kind::RainSeries => Value::Series(
            data.iter()
                .map(|&b| (b != 0xFF).then(|| f64::from(b) / 10.0))
                .collect(),
        ),
        Kind::LevelSeries => Value::Series(
            data.chunks(2)
                .map(|pair| match pair {
                    [hi, lo] => {
                        let cm = u16::from_be_bytes([*hi, *lo]);
                        (cm != 0xFFFF).then(|| f64::from(cm) / 100.0)
                    }
                    _ => None,
                })
                .collect(),
        ),
        Kind::Status => {
            if data.len() > 4 {
                return Value::Raw;
            }
            Value::Status(data.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
        }
        Kind::TimeStep => match bcd_digits(data) {
            Some(d) if data.len() == 3 => {
                let (day, hour, minute) = (d / 10_000, d / 100 % 100, d % 100);
                match u32::try_from(day * 1440 + hour * 60 + minute) {
                    Ok(minutes) => Value::Step { minutes },
                    Err(_) => Value::Raw,
                }
            }
            _ => Value::Raw,
        },
        Kind::Raw => Value::Raw,
    }
}

/// A BCD number with the definition's decimals; `FF` in front means negative; all `F`
/// means absent; anything else that is not BCD is kept raw.
pub fn decode_number(definition: u8, data: &[u8]) -> Value {
    if data.is_empty() {
        return Value::Raw;
    }
    if data.iter().all(|&b| b == 0xFF) {
        return Value::Absent;
    }
    let (negative, digits) = match data {
        [0xFF, rest @ ..] => (true, rest),
        _ => (false, data),
    };
    let Some(n) = bcd_digits(digits) else {
        return Value::Raw;
    };
    // Integers up to 22 digits: f64 is exact for the 16 digits that real elements use.
    let scaled = n as f64 / 10f64.powi(i32::from(decimals(definition)));
    Value::Number(if negative { -scaled } else { scaled })
}

/// Reads packed BCD digits; `None` when a nibble is not a decimal digit or it overflows.
pub fn bcd_digits(bytes: &[u8]) -> Option<u128> {
    let mut n: u128 = 0;
    for &b in bytes {
        let (hi, lo) = (b >> 4, b & 0x0F);
        if hi > 9 || lo > 9 {
            return None;
        }
        n = n.checked_mul(100)?.checked_add(u128::from(hi * 10 + lo))?;
    }
    Some(n)
}

/// Writes `n` as `len` bytes of packed BCD; `None` when it does not fit.
pub fn to_bcd(mut n: u128, len: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; len];
    for slot in out.iter_mut().rev() {
        let lo = (n % 10) as u8;
        n /= 10;
        let hi = (n % 10) as u8;
        n /= 10;
        *slot = (hi << 4) | lo;
    }
    (n == 0).then_some(out)
}

/// Encodes a number with a definition byte for a positive value; a negative value gets the
/// `FF` sign byte and a definition one byte longer, as RTUs send it. Returns the definition
/// byte actually used and the data.
pub fn encode_number(definition: u8, value: f64) -> Result<(u8, Vec<u8>), Sl651Error> {
    let too_big =
        || Sl651Error::Encode(format!("{value} does not fit definition {definition:02X}"));
    if !value.is_finite() {
        return Err(too_big());
    }
    let scaled = (value.abs() * 10f64.powi(i32::from(decimals(definition)))).round();
    if scaled >= 1e30 {
        return Err(too_big());
    }
    let digits = to_bcd(scaled as u128, data_len(definition)).ok_or_else(too_big)?;
    if value < 0.0 && scaled > 0.0 {
        let longer = definition.checked_add(0x08).ok_or_else(too_big)?;
        let mut data = Vec::with_capacity(digits.len() + 1);
        data.push(0xFF);
        data.extend(digits);
        Ok((longer, data))
    } else {
        Ok((definition, digits))
    }
}

/// Encodes an element's value to its data bytes (HEX frames). Returns (definition, data).
pub fn encode_value(
    identifier: &Identifier,
    definition: u8,
    value: &Value,
) -> Result<(u8, Vec<u8>), Sl651Error> {
    let kind = identifier.info().map_or(Kind::Number, |i| i.kind);
    let wrong = || {
        Sl651Error::Encode(format!(
            "value {value:?} does not suit element {}",
            identifier.label()
        ))
    };
    match (kind, value) {
        (_, Value::Absent) => Ok((definition, vec![0xFF; data_len(definition).max(1)])),
        (Kind::Number, Value::Number(v)) => encode_number(definition, *v),
        (Kind::RainSeries, Value::Series(values)) => {
            let data = values
                .iter()
                .map(|v| match v {
                    None => Ok(0xFF),
                    Some(mm) => {
                        let tenths = (mm * 10.0).round();
                        if (0.0..255.0).contains(&tenths) {
                            Ok(tenths as u8)
                        } else {
                            Err(wrong())
                        }
                    }
                })
                .collect::<Result<Vec<u8>, _>>()?;
            Ok((series_definition(data.len())?, data))
        }
        (Kind::LevelSeries, Value::Series(values)) => {
            let mut data = Vec::with_capacity(values.len() * 2);
            for v in values {
                let cm = match v {
                    None => 0xFFFF,
                    Some(m) => {
                        let cm = (m * 100.0).round();
                        if (0.0..65535.0).contains(&cm) {
                            cm as u16
                        } else {
                            return Err(wrong());
                        }
                    }
                };
                data.extend(cm.to_be_bytes());
            }
            Ok((series_definition(data.len())?, data))
        }
        (Kind::Status, Value::Status(bits)) => Ok((0x20, bits.to_be_bytes().to_vec())),
        (Kind::TimeStep, Value::Step { minutes }) => {
            let (day, hour, minute) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
            let n = u128::from(day * 10_000 + hour * 100 + minute);
            Ok((0x18, to_bcd(n, 3).ok_or_else(wrong)?))
        }
        _ => Err(wrong()),
    }
}

fn series_definition(bytes: usize) -> Result<u8, Sl651Error> {
    u8::try_from(bytes)
        .ok()
        .filter(|b| *b < 32)
        .map(|b| b << 3)
        .ok_or_else(|| Sl651Error::Encode(format!("a series of {bytes} bytes is too long")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_bytes_match_the_worked_examples() {
        // 0x19: 3 bytes, 1 decimal; 0x23: 4 bytes, 3 decimals; 0x12: 2 bytes, 2 decimals.
        assert_eq!(info(0x20).map(ElementInfo::definition), Some(0x19));
        assert_eq!(info(0x26).map(ElementInfo::definition), Some(0x19));
        assert_eq!(info(0x39).map(ElementInfo::definition), Some(0x23));
        assert_eq!(info(0x38).map(ElementInfo::definition), Some(0x12));
        assert_eq!(info(0xF4).map(ElementInfo::definition), Some(0x60));
        assert_eq!(info(0xF5).map(ElementInfo::definition), Some(0xC0));
        assert_eq!(info(0x27).map(ElementInfo::definition), Some(0x2B));
    }

    #[test]
    fn negative_values_carry_a_sign_byte() {
        let (def, data) = encode_number(0x23, -1.25).expect("fits");
        assert_eq!(def, 0x2B);
        assert_eq!(data, vec![0xFF, 0x00, 0x00, 0x12, 0x50]);
        assert_eq!(decode_number(def, &data), Value::Number(-1.25));
    }

    #[test]
    fn all_f_is_absent_and_bad_bcd_is_raw() {
        assert_eq!(decode_number(0x23, &[0xFF; 4]), Value::Absent);
        assert_eq!(decode_number(0x23, &[0x00, 0x0A, 0x00, 0x00]), Value::Raw);
    }

    #[test]
    fn too_large_a_value_is_refused() {
        assert!(encode_number(0x12, 123.45).is_err());
    }
}
